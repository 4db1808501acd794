"""The dashboard's built files (service/api/static, committed) match web/, its sources:
rebuild them with `make web` after changing anything the build reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
STATIC = ROOT / "service" / "api" / "static"
# What the build reads: keep in step with web/scripts/build-info.mjs.
INPUTS = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts",
          "src", "scripts")
STALE = "the dashboard's built files are stale: run `make web` and commit service/api/static"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(root: Path, entries: tuple[str, ...]) -> list[str]:
    found = []
    for entry in entries:
        path = root / entry
        found += ([p.relative_to(root).as_posix() for p in path.rglob("*") if p.is_file()]
                  if path.is_dir() else [entry])
    return found


def inputs_digest(web: Path = WEB) -> str:
    digest = hashlib.sha256()
    for name in sorted(files(web, INPUTS)):
        digest.update(f"{name}\0{sha256(web / name)}\n".encode())
    return digest.hexdigest()


def build_info() -> dict[str, object]:
    return json.loads((STATIC / "build-info.json").read_text())  # type: ignore[no-any-return]


def test_the_built_files_were_built_from_the_current_sources() -> None:
    assert build_info()["inputs_sha256"] == inputs_digest(), STALE


def test_the_built_files_are_the_ones_the_build_wrote() -> None:
    outputs = build_info()["outputs"]
    assert isinstance(outputs, dict)
    present = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert present - {"build-info.json"} == set(outputs), STALE
    for name, digest in outputs.items():
        assert sha256(STATIC / name) == digest, f"{name} was changed after the build; {STALE}"


def test_the_digest_notices_a_changed_or_added_source(tmp_path: Path) -> None:
    web = tmp_path / "web"
    for name in files(WEB, INPUTS):
        (web / name).parent.mkdir(parents=True, exist_ok=True)
        (web / name).write_bytes((WEB / name).read_bytes())
    assert inputs_digest(web) == inputs_digest()
    main = web / "src" / "main.tsx"
    main.write_text(main.read_text() + "\n")
    changed = inputs_digest(web)
    (web / "src" / "more.ts").write_text("export {};\n")
    assert len({inputs_digest(), changed, inputs_digest(web)}) == 3
