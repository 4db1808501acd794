"""The distribution ships every package under its installed name, migrations included."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"service": "optimlab.service", "worker": "optimlab.worker",
          "migrations": "optimlab.migrations", "client": "optimlab.client"}


def declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def source_packages() -> set[str]:
    found = set()
    for folder, name in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    return found


def test_every_source_package_is_declared() -> None:
    assert source_packages() == declared_packages()


@pytest.mark.timeout(300)
def test_the_wheel_contains_the_code_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("optimlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "optimlab/service/api/main.py" in names
    assert "optimlab/worker/engine/loop.py" in names
    assert "optimlab/migrations/env.py" in names
    assert "optimlab/client/cli.py" in names
    assert "optimlab/migrations/script.py.mako" in names
    assert any(n.startswith("optimlab/migrations/versions/0001_") for n in names)
    bare = ("service/", "worker/", "client/", "tests/", "web/")
    assert not any(n.startswith(bare) for n in names)
    static = ROOT / "service" / "api" / "static"
    built = {f"optimlab/service/api/static/{p.relative_to(static).as_posix()}"
             for p in static.rglob("*") if p.is_file()}
    assert "optimlab/service/api/static/index.html" in built
    assert any(n.endswith(".js") for n in built)
    assert built <= names  # the dashboard, so that an installed wheel serves it too
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "optimlab = optimlab.service.cli:main" in zipfile.ZipFile(wheel).read(
        entry_points).decode()
