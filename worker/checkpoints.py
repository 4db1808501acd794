"""Where checkpoints live: a folder by default, any fsspec URL (an object store shared by
all hosts) when configured. One key per run (a job id, a fused group), one file per step.

A file is written under a temporary name and then moved into place, so a reader never sees
half a checkpoint (object stores put whole objects anyway); reading uses
``torch.load(weights_only=True)``, which builds tensors and plain data only.
"""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import fsspec
import torch
from fsspec.core import url_to_fs

from optimlab.worker.engine.checkpoint import RunState

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_FILE = re.compile(r"^step-(\d{12})\.pt$")


class CheckpointStore:
    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url
        self.fs: fsspec.AbstractFileSystem
        self.fs, self.root = url_to_fs(url, **storage_options)

    def save(self, key: str, step: int, state: RunState) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        folder = self._folder(key)
        self.fs.makedirs(folder, exist_ok=True)
        final = f"{folder}/step-{step:012d}.pt"
        temporary = f"{folder}/.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(temporary, buffer.getvalue())
        self.fs.mv(temporary, final)

    def steps(self, key: str) -> list[int]:
        """The steps checkpointed under ``key``, in increasing order."""
        folder = self._folder(key)
        if not self.fs.exists(folder):
            return []
        names = (str(path).rsplit("/", 1)[-1] for path in self.fs.ls(folder, detail=False))
        return sorted(int(match.group(1)) for name in names if (match := _FILE.match(name)))

    def load(self, key: str, step: int) -> RunState | None:
        path = f"{self._folder(key)}/step-{step:012d}.pt"
        if not self.fs.exists(path):
            return None
        state: RunState = torch.load(io.BytesIO(self.fs.cat_file(path)), weights_only=True,
                                     map_location="cpu")
        return state

    def latest(self, key: str, *, at_most: int | None = None) -> tuple[int, RunState] | None:
        """The newest checkpoint of ``key`` (at or before step ``at_most``), or None."""
        for step in reversed(self.steps(key)):
            if at_most is None or step <= at_most:
                state = self.load(key, step)
                if state is not None:
                    return step, state
        return None

    def prune(self, key: str, *, keep: int) -> None:
        """Delete all but the ``keep`` newest checkpoints of ``key``."""
        for step in self.steps(key)[:-keep] if keep > 0 else self.steps(key):
            self.fs.rm_file(f"{self._folder(key)}/step-{step:012d}.pt")

    def delete(self, key: str) -> None:
        folder = self._folder(key)
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def _folder(self, key: str) -> str:
        if not _KEY.match(key):  # never a path outside the store's root
            raise ValueError(f"not a checkpoint key: {key!r}")
        return f"{self.root.rstrip('/')}/{key}"
