"""The one error type for specs the engine cannot run, with the field it blames: beside the
spec (spec.py), for the engine that raises it and the API that answers it with a 422."""

from __future__ import annotations

Loc = tuple[str | int, ...]


class SpecError(ValueError):
    """``loc`` is the path of the offending field in the job spec, e.g. ``("optimizer", "lr")``."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        self.message = message
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")
