"""monetr's YAML files and ``MONETR_*`` variables -> the value of each setting, as viper reads them.

monetr reads its configuration with viper: the first ``-c`` file, every later one merged
over it (mappings deeply, a later value replacing an earlier one, keys matched without
regard to case at every level), then a few environment variables over both. Only the
settings in :data:`SETTINGS` are looked at; every other key is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from .._errors import ConfigError

__all__ = ["SETTINGS", "Settings", "read_settings"]

#: Every setting read, in monetr's spelling, with the environment variable that overrides it.
SETTINGS: dict[str, str | None] = {
    "postgreSql.address": "MONETR_PG_ADDRESS",
    "postgreSql.port": "MONETR_PG_PORT",
    "postgreSql.username": "MONETR_PG_USERNAME",
    "postgreSql.password": "MONETR_PG_PASSWORD",
    "postgreSql.database": "MONETR_PG_DATABASE",
    "postgreSql.insecureSkipVerify": "MONETR_PG_INSECURE_SKIP_VERIFY",
    "postgreSql.caCertificatePath": "MONETR_PG_CA_PATH",
    "postgreSql.certificatePath": "MONETR_PG_CERT_PATH",
    "postgreSql.keyPath": "MONETR_PG_KEY_PATH",
    "storage.enabled": "MONETR_STORAGE_ENABLED",
    "storage.provider": "MONETR_STORAGE_PROVIDER",
    "storage.s3.accessKey": None,
    "storage.s3.secretKey": None,
    "storage.s3.endpoint": None,
    "storage.s3.region": None,
    "storage.s3.bucket": None,
    "storage.s3.forcePathStyle": None,
    "storage.s3.useEnvCredentials": None,
    "storage.filesystem.basePath": None,
    "security.privateKey": None,
    "keyManagement.provider": "MONETR_KMS_PROVIDER",
}

_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_YAML12_BOOLEANS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
#: What Go's strconv.ParseBool (how viper reads text as a boolean) accepts, nothing else.
_GO_BOOLEANS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, first: int, again: int) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading plain scalars as monetr's YAML library (go-yaml v3)
    does when it fills viper's untyped maps.

    PyYAML follows YAML 1.1, where ``yes``/``on``/``no``/``off`` are booleans, ``12:30``
    is the number 750 and ``2024-01-01`` a date. go-yaml hands all of those to viper as
    text: a password ``12:30`` stays ``12:30``, and ``enabled: yes`` is the text "yes",
    which monetr then reads as false.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        if kind is yaml.ScalarNode and (
            (tag == _BOOL and value not in _YAML12_BOOLEANS)
            or tag == _TIMESTAMP
            or (tag in (_INT, _FLOAT) and ":" in value)
        ):
            return _STR
        return tag

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # go-yaml refuses a mapping that names a key twice (monetr does not start), where
        # PyYAML would silently keep the last value.
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                first = seen.setdefault((key_node.tag, key_node.value), key_node)
                if first is not key_node:
                    line = first.start_mark.line + 1
                    raise _DuplicateKeyError(key_node.value, line, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class Given:
    """A setting's value as a file or variable gave it, and which one."""

    value: object
    source: str
    from_env: bool

    @property
    def where(self) -> str:
        return f"environment variable {self.source}" if self.from_env else f"file {self.source}"


@dataclass
class _Section:
    path: str
    #: Lowercased key -> a sub-section, or the setting's name in :data:`SETTINGS`.
    children: dict[str, _Section | str]


def _tree() -> _Section:
    top = _Section("", {})
    for name in SETTINGS:
        section = top
        *parents, leaf = name.split(".")
        for depth, part in enumerate(parents):
            child = section.children.setdefault(
                part.lower(), _Section(".".join(parents[: depth + 1]), {})
            )
            assert isinstance(child, _Section)
            section = child
        section.children[leaf.lower()] = name
    return top


_TREE = _tree()


def _kind(value: object) -> str:
    """How a value's type reads in an error, without the value itself."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return f"a YAML {type(value).__name__}"


def _shown(value: object) -> str:
    """A value quoted in an error: only ever for settings that are not secrets."""
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _load(path: Path) -> dict[Any, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"monetr's config file {path} does not exist", source=str(path)) from None
    except UnicodeDecodeError as exc:
        # The decode error holds the file's bytes: not chained.
        raise ConfigError(
            f"monetr's config file {path} is not UTF-8 text (byte {exc.start})", source=str(path)
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"monetr's config file {path} cannot be read: {exc.strerror}", source=str(path)
        ) from exc
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except _DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}, line {exc.again}: the key {exc.key!r} is given twice in one mapping "
            f"(first on line {exc.first}); monetr refuses such a file too",
            source=str(path),
        ) from None
    except yaml.YAMLError as exc:
        # Not chained, and the problem's quoted characters left out: PyYAML's message
        # shows the offending line, which may hold a password.
        mark = getattr(exc, "problem_mark", None)
        problem = re.sub(
            r"'(?!<)[^']*'|\"[^\"]*\"", "(not shown)", getattr(exc, "problem", "") or ""
        )
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = f": {problem}" if problem else ""
        raise ConfigError(f"{path} is not valid YAML{at}{detail}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of settings at the top, not {_kind(data)}",
            source=str(path),
        )
    return data


def _wrong(name: str, source: str, problem: str) -> ConfigError:
    return ConfigError(f"{name} (file {source}): {problem}", key=name, source=source)


def _flatten(
    mapping: dict[Any, Any], section: _Section, source: str, out: dict[str, Given]
) -> None:
    spelled: dict[str, str] = {}
    for key, value in mapping.items():
        written = str(key)
        child = section.children.get(written.lower())
        if child is None:
            continue  # monetr has many settings this library does not need
        name = child if isinstance(child, str) else child.path
        if written.lower() in spelled:
            # viper would keep one of the two at random (Go's map order).
            first = spelled[written.lower()]
            raise _wrong(name, source, f"given twice, as {first!r} and {written!r}")
        spelled[written.lower()] = written
        if isinstance(child, _Section):
            if value is None:
                continue  # an empty section, every setting in it commented out
            if not isinstance(value, dict):
                raise _wrong(name, source, f"must be a section of settings, not {_kind(value)}")
            _flatten(value, child, source, out)
        elif isinstance(value, dict | list):
            raise _wrong(name, source, f"must be a single value, not {_kind(value)}")
        else:
            # A null is kept: over an earlier file's value it brings back the default, as
            # viper's merge does.
            out[child] = Given(value, source, from_env=False)


def read_settings(paths: Sequence[Path], env: Mapping[str, str]) -> Settings:
    """Each setting of :data:`SETTINGS` that the files or ``env`` give, where it came from.

    Files are merged in order, later over earlier; a variable that is set and not empty
    wins over every file (viper ignores empty variables).
    """
    given: dict[str, Given] = {}
    for path in paths:
        _flatten(_load(path), _TREE, str(path), given)
    for name, variable in SETTINGS.items():
        if variable is not None and env.get(variable):
            given[name] = Given(env[variable], variable, from_env=True)
    return Settings(given, tuple(paths))


class Settings:
    """The settings monetr would use, read as one type each, with errors naming where a
    wrong value came from. An absent, null or empty value takes the default."""

    def __init__(self, given: dict[str, Given], files: tuple[Path, ...]) -> None:
        self._given = given
        self.files = files

    def _get(self, name: str) -> Given | None:
        assert name in SETTINGS, name
        found = self._given.get(name)
        if found is None or found.value is None or found.value == "":
            return None
        return found

    def error(self, name: str, problem: str) -> ConfigError:
        """An error about ``name``, naming the file or variable that set it, if any."""
        found = self._get(name)
        if found is None:
            files = ", ".join(map(str, self.files)) or "no file"
            return ConfigError(f"{name} is not set ({files}): {problem}", key=name)
        return ConfigError(f"{name} ({found.where}): {problem}", key=name, source=found.source)

    def text(self, name: str, default: str | None = None) -> str | None:
        """A text setting. Numbers and booleans are taken as viper turns them into text
        (``password: 123456`` is the password "123456"); nothing of the value is ever
        quoted in an error, so this also serves secrets."""
        found = self._get(name)
        if found is None:
            return default
        value = found.value
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            # Go's shortest form without an exponent: 1.5, 1000 (not 1000.0).
            return format(Decimal(repr(value)).normalize(), "f")
        raise self.error(name, f"must be text, not {_kind(value)}")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high``; text of digits counts (variables are text)."""
        found = self._get(name)
        if found is None:
            return default
        value = found.value
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
            number = int(value)
        if number is None or not low <= number <= high:
            raise self.error(
                name, f"must be a whole number from {low} to {high}, not {_shown(value)}"
            )
        return number

    def boolean(self, name: str, default: bool) -> bool:
        """true or false, or what Go's ParseBool reads as one (``1``, ``F``, ``TRUE`` ...)."""
        found = self._get(name)
        if found is None:
            return default
        value = found.value
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value in _GO_BOOLEANS:
            return _GO_BOOLEANS[value]
        # viper reads any other text as false without a word: "yes" included.
        hint = " (monetr would read it as false)" if isinstance(value, str) else ""
        raise self.error(name, f"must be true or false, not {_shown(value)}{hint}")

    def path(self, name: str, default: Path | None = None) -> Path | None:
        """A file or folder path, as written (relative paths are monetr's working directory's)."""
        found = self._get(name)
        if found is None:
            return default
        if not isinstance(found.value, str):
            raise self.error(name, f"must be a path, not {_kind(found.value)}")
        return Path(found.value)
