"""``make examples``: run every example, write examples/results.json, render the README.

``python -m examples --render-only`` re-renders the README from the stored results (after
editing the prose in examples/readme.py) without running anything; ``--this-cpu`` runs
the fast examples and the seed spread and stores them in examples/reproductions.json under
this CPU's capability (AVX2, AVX512, ...), which the tests then compare with on such CPUs.
"""

from __future__ import annotations

import argparse
import time

from examples.figures import (
    REPRODUCTIONS,
    RESULTS,
    collect,
    example_names,
    fast_names,
    load_results,
    prepare_process,
    write_reproduction,
    write_results,
)
from examples.readme import README, render, replace_section


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__)
    parser.add_argument("--render-only", action="store_true",
                        help="render README.md from examples/results.json without running")
    parser.add_argument("--this-cpu", action="store_true",
                        help="store this CPU's figures of the fast examples in "
                             "examples/reproductions.json; the README is left alone")
    args = parser.parse_args()
    if args.this_cpu:
        prepare_process()
        results = collect(fast_names())
        write_reproduction(results)
        print(f"stored this CPU's figures ({results['environment']}) in {REPRODUCTIONS}")
        return
    if not args.render_only:
        prepare_process()
        started = time.perf_counter()
        results = collect(example_names())
        write_results(results)
        print(f"ran {len(results['examples'])} examples and the seed spread in "
              f"{time.perf_counter() - started:.0f} s: {RESULTS}")
    README.write_text(replace_section(README.read_text(), render(load_results())))
    print(f"rendered the examples section of {README}")


if __name__ == "__main__":
    main()
