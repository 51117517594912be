"""Errors a user can act on. The CLI prints them without a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class MednerError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class FormatError(MednerError):
    """Bad input in a corpus file, located by file and line (1-based)."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(MednerError):
    """A bad option or config field, named in the message."""


def one_of(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]``, or a ConfigError naming ``what`` was asked for and the choices."""
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}; choose one of: {', '.join(table)}"
                          ) from None
