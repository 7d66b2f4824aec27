"""Secrets the tests plant -> every text of an error, in which none of them may show."""

from __future__ import annotations

import traceback

#: A password the database refuses, distinct enough that finding it in a text means a leak.
WRONG_PASSWORD = "not-the-password-Zq8!x"


def full_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback, causes and contexts included."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])
