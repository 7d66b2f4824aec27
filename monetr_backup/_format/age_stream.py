"""A blocking age call over file objects -> steps of bounded batches, off the event loop.

pyrage's ``encrypt_io``/``decrypt_io`` stream through file objects: one blocking call
reads its input with ``read()`` and writes its output with ``write()`` until the input
ends. That call runs in a thread of its own (:class:`AgeThread`); each :meth:`step`, run
in an anyio worker thread so the event loop never waits, hands it one batch of input and
returns what it wrote meanwhile, once it asks for more. So one batch of input and its
output are all that is held, and the call goes at the pace of whoever takes the steps:
back-pressure both ways, without a queue that could grow.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["AgeThread", "Left"]


class Left(Exception):
    """Raised inside the age call's reads and writes once the consumer has left."""


class _Input(io.BufferedIOBase):
    def __init__(self, owner: AgeThread) -> None:
        self._owner = owner

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        return self._owner._read(size if size is not None and size >= 0 else 1 << 20)


class _Output(io.BufferedIOBase):
    def __init__(self, owner: AgeThread) -> None:
        self._owner = owner

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        return self._owner._write(data)


class AgeThread:
    """``run(input, output)`` in a thread, fed and drained one :meth:`step` at a time.

    :meth:`step` takes a batch (``b""``: the input has ended) and returns the output
    written until the call asked for more input, or, for the last step, until it
    returned; an exception it raised is raised by the step. :meth:`close` stops the call
    wherever it is and joins its thread: safe to call at any time, and twice.
    """

    def __init__(self, run: Callable[[io.BufferedIOBase, io.BufferedIOBase], object]) -> None:
        self._run = run
        self._cond = threading.Condition()
        self._input = memoryview(b"")
        self._ended = False
        self._left = False
        self._hungry = False
        self._done = False
        self._error: BaseException | None = None
        self._output: list[bytes] = []
        self._thread = threading.Thread(target=self._main, name="monetr-backup-age", daemon=True)
        self._started = False

    # -- the age call's side (its own thread) ---------------------------------------------

    def _main(self) -> None:
        error: BaseException | None = None
        try:
            self._run(_Input(self), _Output(self))
        except BaseException as exc:
            error = exc
        with self._cond:
            # The call returned with input unread: age stopped at the end of its stream
            # and what follows is not part of it.
            if error is None and self._input:
                error = TrailingDataError("data after the end of the age stream")
            self._error = error
            self._done = True
            self._cond.notify_all()

    def _read(self, size: int) -> bytes:
        with self._cond:
            while not self._input and not self._ended and not self._left:
                self._hungry = True
                self._cond.notify_all()
                self._cond.wait()
            self._hungry = False
            if self._left:
                raise Left
            piece = bytes(self._input[:size])
            self._input = self._input[size:]
            return piece

    def _write(self, data: Any) -> int:
        piece = bytes(data)
        with self._cond:
            if self._left:
                raise Left
            self._output.append(piece)
        return len(piece)

    # -- the consumer's side ----------------------------------------------------------

    def step(self, data: bytes, *, wait: bool = True) -> bytes:
        """Blocking: feed ``data`` (``b""`` ends the input), return the output since.

        ``wait=False`` overlaps the call's work with the caller's: the step waits only
        until the previous batch has been taken in, hands ``data`` over and returns what
        was written until then (two batches in flight at most). The last step always
        waits for the call to return.
        """
        with self._cond:
            if self._left:
                raise Left
            if not self._started:
                self._started = True
                self._thread.start()
            while self._input and not self._done:
                self._cond.wait()
            if not self._done:
                if data:
                    self._input = memoryview(data)
                else:
                    self._ended = True
                self._hungry = False
                self._cond.notify_all()
                if wait or not data:
                    while not self._done and not (self._hungry and not self._input):
                        self._cond.wait()
            out = b"".join(self._output)
            self._output.clear()
            if self._done:
                if self._error is not None:
                    raise self._error
                if data and not self._ended:
                    raise TrailingDataError("data after the end of the age stream")
            return out

    def close(self) -> None:
        """Stop the call (its next read or write raises :class:`Left`) and join its thread.

        Blocking, but briefly: the call only ever waits on this object, so once told, it
        stops within one age chunk (64 KiB) of work.
        """
        with self._cond:
            self._left = True
            self._cond.notify_all()
            started = self._started
        if started:
            self._thread.join()


class TrailingDataError(Exception):
    """Bytes followed the end of an age stream."""
