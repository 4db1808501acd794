"""What hostile uploads and specs cost the API process: its memory (RSS) and the time to an
answer, for a 1M-column one-row CSV and a 5M-value parameter list.

    python bench/hostile_input.py

Runs the app in-process on an embedded (SQLite) database in a temporary folder; each case
in a fresh process, so that one case's memory does not hide the next one's.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import psutil
from support import load_line


def _case(name: str) -> None:
    from fastapi.testclient import TestClient

    from optimlab.migrations import upgrade
    from optimlab.service.api.main import create_app
    from optimlab.service.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url=None, broker_url=None)
        upgrade(settings.database)
        with TestClient(create_app(settings)) as client:
            process = psutil.Process()
            before = process.memory_info().rss
            started = time.perf_counter()
            if name == "csv":
                columns = 1_000_000
                header = ",".join(f"c{j}" for j in range(columns - 1)) + ",y"
                content = (header + "\n" + ",".join(["1"] * columns) + "\n").encode()
                response = client.post("/v1/datasets", files={"file": ("wide.csv", content)},
                                       data={"target": "y"})
                size = len(content)
            else:
                values = b",".join([b"1"] * 5_000_000)  # 10 MB: under the byte limit
                body = (b'{"model": {"kind": "expression", "expression": "sum(x)", '
                        b'"parameters": {"x": [' + values + b']}}, "loss": "none", '
                        b'"optimizer": {"name": "SGD"}, "steps": 1}')
                response = client.post("/v1/jobs", content=body,
                                       headers={"content-type": "application/json"})
                size = len(body)
            seconds = time.perf_counter() - started
            after = process.memory_info().rss
    print(f"{name}: {size / 1e6:.1f} MB body -> {response.status_code} in {seconds:.2f} s, "
          f"RSS {before / 1e6:.0f} -> {after / 1e6:.0f} MB "
          f"({response.text[:100]})")


def main() -> None:
    print(load_line())
    context = multiprocessing.get_context("spawn")
    for name in ("csv", "spec"):
        child = context.Process(target=_case, args=(name,))
        child.start()
        child.join()
        if child.exitcode:
            sys.exit(child.exitcode)


if __name__ == "__main__":
    main()
