"""``make examples``: run every example, write examples/results.json, render the README.

``python -m examples --render-only`` re-renders the README from the stored results (after
editing the prose in examples/readme.py) without running anything.
"""

from __future__ import annotations

import argparse
import time

from examples.figures import (
    RESULTS,
    collect,
    example_names,
    load_results,
    prepare_process,
    write_results,
)
from examples.readme import README, render, replace_section


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__)
    parser.add_argument("--render-only", action="store_true",
                        help="render README.md from examples/results.json without running")
    args = parser.parse_args()
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
