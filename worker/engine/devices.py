"""Where a job runs: the spec asks for auto, cpu or cuda; the worker's hardware decides auto."""

from __future__ import annotations

import torch


class DeviceUnavailable(RuntimeError):
    pass


def resolve_device(requested: str) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable("the job asks for cuda but this worker has no GPU")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
