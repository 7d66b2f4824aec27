"""A module's grouped ``__all__`` -> one reference heading per group (an mkdocs hook).

The groups of ``__all__`` (a comment, then its names) are the documentation of the
public surface, so the reference pages are generated from them: a page says
``<!-- api: monetr_backup -->`` and gets every exported name, in that order, under
its group's heading. A name added to ``__all__`` is in the reference with no page to
edit, and one that cannot be rendered fails the strict build.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- api: (?P<module>[\w.]+) -->$", re.MULTILINE)


def module_file(module: str) -> Path:
    """Where the source of ``module`` (a package or a module of this repository) is."""
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def groups(source: str) -> list[tuple[str, list[str]]]:
    """The ``__all__`` list of ``source`` as (group title, names), in order.

    A comment line inside the list starts a group; ``# noqa`` comments are not titles.
    """
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    start = next(
        i
        for i, tok in enumerate(tokens)
        if tok.type == tokenize.NAME and tok.string == "__all__" and tok.start[1] == 0
    )
    result: list[tuple[str, list[str]]] = []
    depth = 0
    for tok in tokens[start:]:
        if tok.type == tokenize.OP and tok.string == "[":
            depth += 1
        elif tok.type == tokenize.OP and tok.string == "]":
            depth -= 1
            if depth == 0:
                break
        elif depth and tok.type == tokenize.COMMENT:
            title = tok.string.lstrip("#").strip()
            if not title.startswith("noqa"):
                result.append((title[:1].upper() + title[1:], []))
        elif depth and tok.type == tokenize.STRING:
            if not result:
                raise ValueError(f"{tok.string} comes before the first group comment")
            result[-1][1].append(ast.literal_eval(tok.string))
    return result


def reference(module: str) -> str:
    """The Markdown of ``module``'s reference: a heading per group, a block per name."""
    source = module_file(module).read_text()
    found = groups(source)
    exported = next(
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    )
    if [name for _, names in found for name in names] != exported:
        raise ValueError(f"the groups read from {module}.__all__ are not its names")
    lines: list[str] = []
    for title, names in found:
        lines += [f"## {title}", ""]
        lines += [line for name in names for line in (f"::: {module}.{name}", "")]
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs hook: expand every ``<!-- api: MODULE -->`` line of a page."""
    return MARKER.sub(lambda match: reference(match["module"]), markdown)
