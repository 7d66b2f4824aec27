"""Sphinx roles in docstrings (:class:`~a.B`) -> mkdocstrings cross-references (a griffe extension).

The docstrings are written with reST's markup, which reads well in the source and in
``help()``: ``code`` is Markdown too, but a role would be printed as it stands. Each
role becomes ``[`B`][path]``, its target resolved in the scope of the object that
holds the docstring (as Sphinx does), so autorefs links it and the strict build fails
on a name that is not in the reference. A paragraph's closing ``::`` (reST's "a
literal block follows") becomes ``:``; the indented block after it is Markdown's too.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|exc|mod|data|obj|const):`(?P<short>~?)(?P<target>[^`<>\s]+)`"
)
LITERAL_AFTER_TEXT = re.compile(r"(?<=\S)::$", re.MULTILINE)
LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*\n", re.MULTILINE)


def resolve(target: str, obj: griffe.Object) -> str:
    """The path ``target`` names, as seen from ``obj`` (its members, then its parents')."""
    head, dot, rest = target.partition(".")
    if head == obj.package.name:
        return target
    try:
        return obj.resolve(head) + dot + rest
    except griffe.NameResolutionError:
        return target  # left as written: autorefs reports it if it is rendered


def convert(text: str, obj: griffe.Object) -> str:
    """``text`` with its roles made cross-references and its ``::`` made ``:``."""

    def link(match: re.Match[str]) -> str:
        target = match["target"]
        label = target.rpartition(".")[2] if match["short"] else target
        if target in vars(builtins):
            return f"`{label}`"
        return f"[`{label}`][{resolve(target, obj)}]"

    text = ROLE.sub(link, text)
    text = LITERAL_AFTER_TEXT.sub(":", text)
    return LITERAL_ALONE.sub("", text)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """griffe hook: the package and all its modules are loaded."""
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)
