"""Secrets the tests plant -> every place they must never show: errors, argv, log records.

:func:`full_text` and :func:`exception_texts` are every text of an error;
:class:`SecretWatch` watches the argv of every process on the machine (``/proc/*/cmdline``,
readable by any local user) and every log record of every logger while an operation runs.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

#: A password the database refuses, distinct enough that finding it in a text means a leak.
WRONG_PASSWORD = "not-the-password-Zq8!x"
#: A secret key the S3 server refuses.
WRONG_S3_SECRET = "not-the-s3-secret-Kd93/q+Vz"


def new_secret(kind: str) -> str:
    """A secret made for this run: no process, file or log can hold it by chance."""
    return f"{kind}-{secrets.token_urlsafe(18)}"


def full_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback, causes and contexts included."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def _chain(exc: BaseException, seen: set[int]) -> Iterator[BaseException]:
    if id(exc) in seen:
        return
    seen.add(id(exc))
    yield exc
    for inner in (exc.__cause__, exc.__context__):
        if inner is not None:
            yield from _chain(inner, seen)
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _chain(inner, seen)


def exception_texts(exc: BaseException) -> list[str]:
    """Every text of ``exc``: str, repr, notes and the formatted traceback of it and of
    every exception in its ``__cause__``/``__context__`` chain (and groups), plus the
    ``args`` each holds (what a logger would print with ``%r``)."""
    texts = [full_text(exc)]
    for inner in _chain(exc, set()):
        texts += [str(inner), repr(inner), repr(inner.args)]
        texts += [str(note) for note in getattr(inner, "__notes__", ())]
    return texts


def assert_no_secret_in_error(exc: BaseException, secret_values: Iterable[str]) -> None:
    """No text of ``exc`` (see :func:`exception_texts`) holds any of ``secret_values``."""
    texts = exception_texts(exc)
    for secret in secret_values:
        for text in texts:
            assert secret not in text, f"a secret is in the text of {type(exc).__name__}"


class _Records:
    """Checks every log record as it is made, whoever handles it (a logger that does not
    propagate too), formatting it then (its arguments may change later), and keeps the
    names of those that hold a secret."""

    def __init__(self, secret_values: list[str]) -> None:
        self.secret_values = secret_values
        self.count = 0
        self.loggers: set[str] = set()
        #: (logger name, level name) of every record checked.
        self.levels: set[tuple[str, str]] = set()
        self.leaks: list[str] = []
        self._format = logging.Formatter()
        self._factory = logging.getLogRecordFactory()
        self._enabled = logging.Logger.isEnabledFor
        self._make_record = logging.Logger.makeRecord

    def __enter__(self) -> None:
        logging.setLogRecordFactory(self._make)
        # Every logger makes every record, whatever level it or the root logger was given.
        logging.Logger.isEnabledFor = _always  # type: ignore[method-assign]
        make_record = self._make_record

        def with_extras(logger: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(logger, *args, **kwargs)
            self.check_extras(record)
            return record

        # ``extra=`` is set on the record after the factory made it: checked here.
        logging.Logger.makeRecord = with_extras  # type: ignore[method-assign,assignment]

    def __exit__(self, *exc_info: object) -> None:
        logging.Logger.makeRecord = self._make_record  # type: ignore[method-assign]
        logging.Logger.isEnabledFor = self._enabled  # type: ignore[method-assign]
        logging.setLogRecordFactory(self._factory)

    def _make(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._factory(*args, **kwargs)
        self.check(record)
        return record

    def check(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.loggers.add(record.name)
        self.levels.add((record.name, record.levelname))
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its message
            message = str(record.msg)
        texts = [message, str(record.msg), repr(record.args), record.stack_info or ""]
        if record.exc_info:
            texts.append(self._format.formatException(record.exc_info))
        for secret in self.secret_values:
            if any(secret in text for text in texts):
                self.leaks.append(f"log record of {record.name!r} at {record.levelname}")

    def check_extras(self, record: logging.LogRecord) -> None:
        """Whatever a formatter might print beyond the message: the ``extra=`` values
        (this library's phase, sizes, the error's type and message)."""
        texts = [str(value) for value in vars(record).values()]
        for secret in self.secret_values:
            if any(secret in text for text in texts):
                self.leaks.append(f"an attribute of a log record of {record.name!r}")


def _always(self: logging.Logger, level: int) -> bool:
    return True


class SecretWatch:
    """While the block runs: the argv of every process on the machine, scanned over and
    over by a thread (and whenever :meth:`scan` is called, e.g. from a progress callback),
    and every record of every logger, at every level down to DEBUG (whatever level the
    logger was set to, and whether or not it propagates), checked for ``secret_values``.

    ``with SecretWatch([...]) as watch: ...`` then ``watch.assert_clean()``; ``programs``
    says which commands the scans saw (so a test can check pg_dump was among them), and
    ``records`` how many log records were checked.
    """

    def __init__(self, secret_values: Iterable[str], *, interval: float = 0.002) -> None:
        self.secret_values = [value for value in secret_values if value]
        assert self.secret_values, "nothing to watch for"
        self._needles = [value.encode() for value in self.secret_values]
        self.interval = interval
        #: Command names (argv[0] without its folder) seen in any scan.
        self.programs: set[str] = set()
        self.scans = 0
        self.argv_leaks: list[str] = []
        self._records = _Records(self.secret_values)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)
        self._lock = threading.Lock()

    @property
    def records(self) -> int:
        """How many log records were checked."""
        return self._records.count

    @property
    def levels(self) -> set[tuple[str, str]]:
        """(logger name, level name) of the records checked."""
        return self._records.levels

    @property
    def loggers(self) -> set[str]:
        """The names of the loggers whose records were checked."""
        return self._records.loggers

    def scan(self) -> None:
        """Read every process's argv once and note any that holds a secret."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if not argv:
                continue  # a kernel thread or a zombie
            program = argv.split(b"\0", 1)[0].rsplit(b"/", 1)[-1].decode(errors="replace")
            with self._lock:
                self.programs.add(program)
                for needle in self._needles:
                    if needle in argv:
                        redacted = argv.replace(needle, b"<SECRET>").replace(b"\0", b" ")
                        self.argv_leaks.append(f"pid {entry}: {redacted.decode(errors='replace')}")
        with self._lock:
            self.scans += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan()

    def __enter__(self) -> SecretWatch:
        self._records.__enter__()
        self.scan()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.scan()
        self._records.__exit__()

    def assert_clean(self) -> None:
        """No argv and no log record held a secret (and the watch did look)."""
        assert self.scans >= 2
        assert not self.argv_leaks, f"a secret in a process's argv: {self.argv_leaks[:5]}"
        assert not self._records.leaks, f"a secret in the logs: {self._records.leaks[:5]}"
