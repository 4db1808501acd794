"""Who is asking: the principal every use case acts for, and what it may see.

The API builds one per request from its API key (or :data:`LOCAL` with auth off) and
passes it down; the owner filter lives here and in :mod:`ownership`, once, not in routers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """``owner``: what the caller creates belongs to it; ``admin``: sees everyone's."""

    owner: str | None
    admin: bool = False

    def sees(self, owner: str | None) -> bool:
        return self.admin or (self.owner is not None and owner == self.owner)

    @property
    def scope(self) -> str | None:
        """The owner a listing is limited to; None: everything (an admin)."""
        return None if self.admin else (self.owner or "")


# With OPTIMLAB_AUTH=off every request acts as this: it sees everything, as before keys;
# what it creates has no owner.
LOCAL = Caller(owner=None, admin=True)
