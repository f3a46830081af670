"""What the service knows about a network a run can use: its entry, as listed and stored.

Plain data on the event-loop side; the networks themselves are built and read in the workers
(powersim/grid). Catalog entries are described by their workers once, uploads by the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from .models import format_time

Source = Literal["builtin", "catalog", "upload"]
UPLOAD_PREFIX: Final = "upload-"
# An upload's id is "upload-<n>", n from the database; parse_upload_id gives n back.
_UPLOAD_ID = re.compile(r"upload-([1-9][0-9]{0,17})")


def upload_id(number: int) -> str:
    return f"{UPLOAD_PREFIX}{number}"


def parse_upload_id(network_id: str) -> int | None:
    """The database number of an upload's id, or None when the id is not an upload's."""
    match = _UPLOAD_ID.fullmatch(network_id)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class NetworkEntry:
    """One network as GET /networks lists it. `inputs` are the run inputs that apply to it."""

    id: str
    name: str
    source: Source
    counts: Mapping[str, int] = field(hash=False)
    inputs: tuple[str, ...]
    sha256: str | None = None  # uploads only
    size_bytes: int | None = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "counts": dict(self.counts),
            "inputs": list(self.inputs),
        }
        if self.source == "upload":
            entry |= {
                "sha256": self.sha256,
                "size_bytes": self.size_bytes,
                "created_at": format_time(self.created_at) if self.created_at else None,
            }
        return entry


@dataclass(frozen=True, slots=True)
class NewUpload:
    """An upload the workers have read and checked, ready to store."""

    name: str
    sha256: str
    size_bytes: int
    created_at: datetime
    counts: Mapping[str, int] = field(hash=False)
    inputs: tuple[str, ...]
    document: bytes = field(repr=False)
