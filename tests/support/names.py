"""A prefix -> a name no other test (or earlier run against an external server) has used."""

from __future__ import annotations

import uuid


def unique_name(prefix: str) -> str:
    """``<prefix>-<12 hex digits>``, unique to this call."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
