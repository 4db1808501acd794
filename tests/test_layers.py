"""The layer contracts of pyproject.toml (import-linter) hold for the code, and each one
breaks on a wrong import put into a copy of it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "worker", "migrations", "client")
# (a module added to the copy, its one import, the contract it breaks)
LEAKS = [
    ("worker/engine/leak.py", "from optimlab.service.db import jobs",
     "the training engine imports nothing of the service, the database or Celery"),
    ("service/db/leak.py", "from optimlab.service.jobs import submit",
     "service: api -> jobs -> db, nothing upward"),
    ("service/api/routes/leak.py", "from optimlab.service.db import models",
     "the API reaches the database through the use cases"),
    ("service/api/leak.py", "from optimlab.worker.celery_app import create_celery",
     "the API reaches the engine and Celery through the use cases"),
    ("worker/leak.py", "from optimlab.service.jobs import cancel",
     "the worker reaches the service through its db layer and its settings only"),
]


def _lint_imports(tree: Path) -> tuple[int, dict[str, str]]:
    """Run lint-imports on ``tree`` (its optimlab/ first on the path); each contract's
    verdict by name."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=tree, capture_output=True,
                          text=True, timeout=120)
    verdicts = dict(re.findall(r"^(.+?) (KEPT|BROKEN)(?: \(.*\))?$", done.stdout, re.M))
    return done.returncode, verdicts


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / "optimlab" / name,
                        ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_code_keeps_every_layer_contract(tmp_path: Path) -> None:
    code, verdicts = _lint_imports(_copy(tmp_path))
    assert set(verdicts) == {contract for _, _, contract in LEAKS}
    assert set(verdicts.values()) == {"KEPT"}
    assert code == 0


def test_each_contract_breaks_on_a_wrong_import(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    for module, line, _ in LEAKS:
        (tree / "optimlab" / module).write_text(f"{line}  # a leak\n")

    code, verdicts = _lint_imports(tree)

    assert code != 0
    assert verdicts == {contract: "BROKEN" for _, _, contract in LEAKS}
