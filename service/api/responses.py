"""A JSON response rendered by orjson, for bodies too large to validate field by field."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """A JSONResponse, so that the OpenAPI document takes a route's documented model for
    its body (not a bare string)."""

    def render(self, content: Any) -> bytes:
        # orjson writes NaN and infinity as null: JSON has no spelling for them.
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_UUID)
