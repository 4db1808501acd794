"""The README's examples section, rendered from examples/results.json.

The section lies between BEGIN and END in README.md; ``make examples`` rewrites it, and
tests/test_examples_results.py fails when the README's text differs from what ``render``
makes of results.json. Edit the prose here, never between the markers.
"""

from __future__ import annotations

import re
import statistics
import textwrap
from pathlib import Path
from typing import Any

from examples.figures import SLOW, SPREAD_SEEDS

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = ("<!-- examples:begin (rendered by `make examples` from examples/results.json; "
         "edit examples/readme.py, not this section) -->")
END = "<!-- examples:end -->"
WIDTH = 95
NBSP = "\u00a0"  # a space that textwrap does not break at


def fixed(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def sci(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` significant digits in e-notation, as 1.4e-8."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def position(parameters: dict[str, float], decimals: int) -> str:
    return f"({fixed(parameters['x'], decimals)}, {fixed(parameters['y'], decimals)})"


def _table(examples: dict[str, Any]) -> list[str]:
    rows = [("digits_sgd_batch_full", "(10 epochs)"),
            ("digits_sgd_batch_full_450_steps", ""),
            ("digits_sgd_batch_32", "(10 epochs)"),
            ("digits_sgd_batch_1_lr_0.01", "(10 epochs, lr 0.01)"),
            ("digits_sgd_batch_1", "(10 epochs)")]
    lines = ["  | spec | updates | val_accuracy | `train_loss_full` went up |",
             "  |---|---:|---:|---:|"]
    for k, (name, note) in enumerate(rows):
        e = examples[name]
        went_up = f"{e['train_loss_full_increases']} of {e['evaluations'] - 1}"
        label = f"`{name}.json` {note}".rstrip()
        lines.append(f"  | {label} | {e['steps']:,} | {fixed(e['evaluation']['val_accuracy'], 3)} "
                     f"| {went_up}{' evaluations' if k == 0 else ''} |")
    return lines


def _spread(runs: list[dict[str, Any]]) -> str:
    accuracies = [run["val_accuracy"] for run in runs]
    return (f"{fixed(min(accuracies), 3)}–{fixed(max(accuracies), 3)} "
            f"(median {fixed(statistics.median(accuracies), 3)})")


def wrap(text: str, *, item: bool = False) -> str:
    """A paragraph (or a list item's, indented under its dash) wrapped at WIDTH, never
    inside a code span (a command stays on one line, to be copied whole)."""
    held = re.sub(r"`[^`]*`", lambda code: code.group(0).replace(" ", NBSP), text)
    wrapped = textwrap.fill(held, width=WIDTH, subsequent_indent="  " if item else "",
                            break_long_words=False, break_on_hyphens=False)
    return wrapped.replace(NBSP, " ")


def render(results: dict[str, Any]) -> str:
    """The section's text, markers included."""
    ex, env, spread = results["examples"], results["environment"], results["seed_spread"]
    seed, sgd, mom = ex["seed_sgd_fixed_lr"], ex["rosenbrock_sgd"], ex["rosenbrock_momentum"]
    nesterov, adam = ex["rosenbrock_nesterov"], ex["rosenbrock_adam"]
    cyc, const = ex["digits_sgd_lr_cyclic"], ex["digits_sgd_lr_constant"]
    slow = " and ".join(f"`{name}.json`" for name in SLOW)
    intro = (
        "The specs are in [examples/](examples/); POST any of them as the seed above (`curl -s "
        "-X POST localhost:8000/v1/jobs -H 'content-type: application/json' "
        "-d @examples/rosenbrock_momentum.json`) and read its `summary` and `/metrics`. The "
        "figures below are what they give (seed 0). `make examples` runs every spec through the "
        "engine's `run_training` as a worker does (`MKL_CBWR="
        f"{env['mkl_cbwr']}`), writes the figures to "
        "[examples/results.json](examples/results.json) and renders this section from that "
        f"file; `tests/test_examples_results.py` runs all but {slow} (about 10 s each here; "
        "`make examples` only) again and fails when a figure differs. They were measured with "
        f"torch {env['torch']} on a CPU it drives with {env['cpu_capability']} kernels: the last "
        "bits of the networks' figures depend on the CPU's kernels, and one run's end on those "
        "bits (below).")
    converges = (
        "- **Does SGD converge with a fixed learning rate?** `seed_sgd_fixed_lr.json` is the "
        f"post's script: the loss reaches exactly {seed['best_loss']:g} at step "
        f"{seed['best_step']} with `lr` constant at {seed['lr_max']:g}. Nothing adjusts the rate "
        "behind the scenes (the `lr` series is flat).")
    momentum = (
        f"- **What does momentum add?** On Rosenbrock from (-1.5, 2), {sgd['steps']:,} steps at "
        f"lr {sgd['lr_max']:g}: plain SGD (`rosenbrock_sgd.json`) is still crawling along the "
        f"valley at {position(sgd['parameters'], 3)}, loss {fixed(sgd['final_loss'], 3)}; "
        f"momentum 0.9 (`rosenbrock_momentum.json`) reaches {position(mom['parameters'], 5)}, "
        f"loss {sci(mom['final_loss'])}; Nesterov (`rosenbrock_nesterov.json`) "
        f"{sci(nesterov['final_loss'])}; Adam at lr {adam['lr_max']:g} (`rosenbrock_adam.json`) "
        f"{sci(adam['final_loss'])}.")
    batches = (
        "  Full-batch gradient descent decreases the true objective monotonically but makes one "
        "update per epoch; mini-batches make many noisy updates from the same data, and here "
        f"{ex['digits_sgd_batch_32']['steps']:,} of them do as well as "
        f"{ex['digits_sgd_batch_full_450_steps']['steps']:,} full-batch steps. With one sample "
        "per step the noise needs a smaller learning rate: at 0.1 the network collapses to "
        "chance, at 0.01 it does best of all.")
    cycles = (
        "- **Do LR cycles help?** Not here: `digits_sgd_lr_cyclic.json` (CyclicLR "
        f"{cyc['lr_min']:g}–{cyc['lr_max']:g}) ends at "
        f"{fixed(cyc['evaluation']['val_accuracy'], 3)} val accuracy against "
        f"{fixed(const['evaluation']['val_accuracy'], 3)} for the constant {const['lr_max']:g} "
        "of `digits_sgd_lr_constant.json` (momentum 0.9, 12 epochs, three full cycles). Its "
        f"mini-batch loss touches {sci(cyc['best_loss'])} (step {cyc['best_step']}), but the "
        "excursions to lr 0.3 leave it with a higher validation loss "
        f"({fixed(cyc['evaluation']['val_loss'], 2)} against "
        f"{fixed(const['evaluation']['val_loss'], 2)}). Where it ends is chaotic: at lr 0.3 and "
        "momentum 0.9 a difference in the last bit of one product (another CPU's kernels, "
        "another thread count without MKL's strict mode, one initial weight moved by one ulp) "
        "grows into another run, so on another machine it ends elsewhere, while the "
        "constant-lr run agrees to three digits. Over seeds "
        f"{SPREAD_SEEDS[0]}–{SPREAD_SEEDS[-1]} the cyclic run ends at "
        f"{_spread(spread['digits_sgd_lr_cyclic'])} val accuracy, the constant one at "
        f"{_spread(spread['digits_sgd_lr_constant'])}. A question for a sweep over `max_lr` "
        "and `step_size_up` (see below).")
    reference = (
        "- And a reference point: `digits_mlp_adam.json` (Adam, lr 0.001, 20 epochs) reaches "
        f"{fixed(ex['digits_mlp_adam']['evaluation']['val_accuracy'], 3)}.")
    stochastic = ("- **Where is the \"stochastic\" part?** In the batch. The same MLP on digits "
                  "with SGD lr 0.1:")
    parts = [BEGIN, wrap(intro), "", wrap(converges, item=True), wrap(momentum, item=True),
             wrap(stochastic, item=True), *_table(ex), "", wrap(batches, item=True),
             wrap(cycles, item=True), wrap(reference, item=True), END]
    return "\n".join(parts)


def section(readme: str) -> str:
    """The rendered section as README.md has it, markers included."""
    match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), readme, flags=re.DOTALL)
    if match is None:
        raise ValueError(f"README.md has no section between {BEGIN!r} and {END!r}")
    return match.group(0)


def replace_section(readme: str, rendered: str) -> str:
    return readme.replace(section(readme), rendered)
