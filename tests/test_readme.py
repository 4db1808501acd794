"""Every shell block of the README runs as pasted, against a real `optimlab up`.

A block is a session: each ``$ `` line (with the lines that continue it) is a command, the
lines under it what it printed. The blocks run in the README's order, each in one bash
process (from a folder that has the repository's ``examples/``), against one embedded stack
on a free port with its own data folder and HOME; ``localhost:8000`` becomes that port.
Each command must exit 0 (``pipefail``), and print what the README shows: compared without
whitespace, ``...`` standing for anything, ids, timestamps and timings for any such value.
A block that must not run here is marked on the line above its fence with
``<!-- not run by tests/test_readme.py: why -->``; there are few.

A ``python`` block runs too, with this interpreter (optimlab installed), from the same
folder: it must exit 0, and each ``# -> shown`` comment is a line it must print, in order.
The folder's ``.venv`` is this interpreter's environment, as `make run` leaves it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_port, optimlab, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELLS = {"sh", "bash", "shell", "console"}
PYTHON = "python"
SHOWN = re.compile(r"#\s*->\s*(.+?)\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NOT_RUN = re.compile(r"^\s*<!-- not run by tests/test_readme\.py: (.+) -->\s*$")
MAX_NOT_RUN = 3
SERVER = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
# What differs from run to run: ids, times, timings.
VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r'("(?:wall_seconds|steps_per_second)":)[-+0-9.eE]+'), r"\1<seconds>"),
]


@dataclass(frozen=True)
class Command:
    text: str
    expected: str  # the lines the README shows under it


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lines: list[str]  # dedented to the fence
    not_run: str | None  # the reason, where the block is marked
    language: str = "sh"

    def commands(self) -> list[Command]:
        return session(self.lines)


def shell_blocks(markdown: str) -> list[Block]:
    blocks, lines = [], markdown.splitlines()
    k = 0
    while k < len(lines):
        opening = FENCE.match(lines[k])
        if opening is None:
            k += 1
            continue
        indent, language = opening.groups()
        end = next(j for j in range(k + 1, len(lines)) if lines[j].strip() == "```")
        if language in SHELLS or language == PYTHON:
            mark = NOT_RUN.match(lines[k - 1]) if k else None
            blocks.append(Block(line=k + 1, lines=[row.removeprefix(indent)
                                                   for row in lines[k + 1:end]],
                                not_run=mark.group(1) if mark else None,
                                language=PYTHON if language == PYTHON else "sh"))
        k = end + 1
    return blocks


def complete(command: str) -> bool:
    """Whether bash would run ``command`` as it is, or wait for more lines."""
    if command.rstrip().endswith("\\"):
        return False
    return subprocess.run(["bash", "-n"], input=command, text=True, capture_output=True,
                          check=False).returncode == 0


def session(lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    k = 0
    while k < len(lines):
        if not lines[k].startswith("$ "):
            assert not lines[k].strip(), f"a line before the first `$ ` command: {lines[k]!r}"
            k += 1
            continue
        text, k = lines[k][2:], k + 1
        while not complete(text):
            assert k < len(lines), f"the block ends inside a command: {text!r}"
            text, k = f"{text}\n{lines[k]}", k + 1
        output = []
        while k < len(lines) and not lines[k].startswith("$ "):
            output.append(lines[k])
            k += 1
        commands.append(Command(text, "\n".join(output)))
    return commands


def normalized(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", "", text)


def matches(expected: str, actual: str) -> bool:
    """``actual`` is what the README shows, ``...`` standing for anything."""
    pattern = ".*?".join(re.escape(part) for part in normalized(expected).split("..."))
    return re.fullmatch(pattern, normalized(actual), flags=re.DOTALL) is not None


BLOCKS = shell_blocks(README.read_text())
RUN = [block for block in BLOCKS if block.not_run is None and block.language != PYTHON]
PYTHON_RUN = [block for block in BLOCKS if block.not_run is None and block.language == PYTHON]

# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Stack:
    port: int
    work: Path  # where the blocks run: has examples/, takes what they write
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("readme")
    for name in ("data", "home", "cwd", "work"):
        (base / name).mkdir()
    (base / "work" / "examples").symlink_to(ROOT / "examples")
    (base / "work" / ".venv").symlink_to(sys.prefix)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPTIMLAB_")}
    env["HOME"] = str(base / "home")
    port = free_port()
    # The CLI's default server is 127.0.0.1:8000, as localhost:8000 in a curl: the same move.
    env["OPTIMLAB_SERVER"] = f"http://127.0.0.1:{port}"
    log = base / "up.log"
    process = optimlab("up", "--port", str(port), "--data-dir", str(base / "data"), "--gpus",
                       "none", env=env, cwd=base / "cwd", log=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        yield Stack(port=port, work=base / "work", env=env)
    finally:
        stop(process)


def run_session(commands: list[Command], stack: Stack) -> list[tuple[int, str]]:
    """(exit status, output) of each command, run one after the other in one bash."""
    token = f"@@readme-{uuid.uuid4().hex}"
    script = ["set -o pipefail"]
    for command in commands:
        script += [SERVER.sub(f"127.0.0.1:{stack.port}", command.text),
                   f'printf "\\n{token} %d\\n" "$?"']
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=stack.work, env=stack.env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=150, check=False)
    parts = re.split(rf"\n{token} (\d+)\n", done.stdout)
    return [(int(parts[k + 1]), parts[k]) for k in range(0, len(parts) - 1, 2)]


# --------------------------------------------------------------------------- the tests


def test_every_shell_block_runs_or_says_why_not() -> None:
    not_run = [block for block in BLOCKS if block.not_run is not None]
    assert len(RUN) >= 5
    assert PYTHON_RUN, "the README shows the client"
    assert len(not_run) <= MAX_NOT_RUN, [(b.line, b.not_run) for b in not_run]
    for block in RUN:
        assert block.commands(), f"README.md line {block.line}: a block without `$ ` commands"
        for command in block.commands():
            assert not re.search(r"<[a-z_]+>", command.text), (
                f"README.md line {block.line}: a placeholder in {command.text!r}")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", RUN, ids=[f"line{block.line}" for block in RUN])
def test_a_block_runs_as_pasted(block: Block, stack: Stack) -> None:
    commands = block.commands()
    results = run_session(commands, stack)
    assert len(results) == len(commands), f"the session stopped early:\n{results}"
    for command, (status, output) in zip(commands, results, strict=True):
        where = f"README.md line {block.line}: {command.text!r}"
        assert status == 0, f"{where} exited {status}:\n{output[-3000:]}"
        assert matches(command.expected, output), (
            f"{where} printed\n{output[-3000:]}\nwhere the README shows\n{command.expected}")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", PYTHON_RUN, ids=[f"line{block.line}" for block in PYTHON_RUN])
def test_a_python_block_runs_as_pasted(block: Block, stack: Stack) -> None:
    code = SERVER.sub(f"127.0.0.1:{stack.port}", "\n".join(block.lines))
    done = subprocess.run([sys.executable, "-c", code], cwd=stack.work, env=stack.env,
                          capture_output=True, text=True, timeout=150, check=False)
    where = f"README.md line {block.line}"
    assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stderr[-3000:]}"
    printed = done.stdout.splitlines()
    for shown in (m.group(1) for row in block.lines if (m := SHOWN.search(row))):
        found = next((k for k, row in enumerate(printed) if matches(shown, row)), None)
        assert found is not None, f"{where} did not print {shown!r}:\n{done.stdout[-3000:]}"
        printed = printed[found + 1:]


def test_the_comparison_fails_another_value_and_passes_elisions() -> None:
    shown = '{"id":"4cd0cae0-7513-478c-8972-5bc6929c52e8","loss":[225.0,...,0.0],...}'
    printed = ('{"id": "0b1e9c1a-0000-4000-8000-000000000000", "loss": [225.0, 180.6, 0.0],'
               ' "wall_seconds": 0.03}')
    assert matches(shown, printed)
    assert not matches(shown, printed.replace("225.0", "225.5"))
    assert not matches("HTTP/1.1 201 Created", "HTTP/1.1 422 Unprocessable Entity")


def test_a_session_is_read_as_commands_and_what_they_printed() -> None:
    markdown = "\n".join([
        "<!-- not run by tests/test_readme.py: starts a server -->",
        "```sh", "make run", "```",
        "  ```sh",
        "  $ x=$(echo 1 |",
        "      cat)",
        "  $ echo '{",
        "  \"a\": 1}'",
        "  {\"a\": 1}",
        "  ```",
        "```", "not a shell block", "```",
    ])
    skipped, run = shell_blocks(markdown)
    assert skipped.not_run == "starts a server"
    assert run.not_run is None
    assert run.commands() == [Command("x=$(echo 1 |\n    cat)", ""),
                              Command("echo '{\n\"a\": 1}'", '{"a": 1}')]
