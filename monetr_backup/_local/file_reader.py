"""A local archive file -> its bytes, as a stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import anyio

from .._errors import ArchiveReadError
from .._units import MIB
from .safe_paths import open_shielded

__all__ = ["file_bytes"]

READ_SIZE = MIB


async def file_bytes(
    path: Path | str, *, read_size: int = READ_SIZE
) -> AsyncGenerator[bytes, None]:
    """Yield the bytes of the file at ``path``."""
    try:
        file = await open_shielded(path, "rb")
    except FileNotFoundError as exc:
        raise ArchiveReadError(f"no archive at {path}") from exc
    except OSError as exc:
        raise ArchiveReadError(f"reading {path} failed: {exc}") from exc
    try:
        while chunk := await file.read(read_size):
            yield chunk
    except OSError as exc:
        raise ArchiveReadError(f"reading {path} failed: {exc}") from exc
    finally:
        # Shielded: a reader closed while its restore is being cancelled (a refused
        # archive ends the task group) must still close the file before it returns.
        with anyio.CancelScope(shield=True):
            await file.close()
