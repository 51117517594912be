"""Corpus formats, looked up by name. Every reader returns Documents, every writer takes them.

Each format is a module in this package with

    read(path, *, on_mismatch, report) -> list[Document]
    write(documents, path) -> None          (atomic: a temp file renamed into place)

Modules are imported lazily so that reading JSONL never imports the BioC library.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from medner.document import Document
from medner.errors import FormatError, MednerError
from medner.io.base import Corpus, OnMismatch, ReadReport, atomic_write, read_text_file

FORMATS: dict[str, str] = {
    "pubtator": "medner.io.pubtator",
    "brat": "medner.io.brat",
    "bioc": "medner.io.bioc_xml",
    "conll": "medner.io.conll",
    "jsonl": "medner.io.jsonl",
    "instruct": "medner.io.instruct",
}

__all__ = [
    "FORMATS",
    "Corpus",
    "ReadReport",
    "atomic_write",
    "detect_format",
    "first_line",
    "format_from_first_line",
    "format_from_name",
    "format_module",
    "read_corpus",
    "read_text_file",
    "write_corpus",
]


def format_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(FORMATS[name])
    except KeyError:
        raise MednerError(
            f"unknown format {name!r}; choose one of: {', '.join(sorted(FORMATS))}"
        ) from None


def format_from_name(path: str | Path) -> str | None:
    """The format a path's name says (or being a folder: brat), without reading it; else None.

    ``.jsonl`` gives ``jsonl``, although ``detect_format`` reads an existing ``.jsonl`` file's
    first line, which may say ``instruct``. Used for outputs, which are not read.
    """
    p = Path(path)
    if p.is_dir() or p.suffix == ".ann":
        return "brat"
    name = p.name.lower()
    if name.endswith(".xml"):
        return "bioc"
    if name.endswith((".conll", ".bio", ".iob", ".iob2", ".tsv")):
        return "conll"
    if "pubtator" in name:
        return "pubtator"
    if name.endswith(".jsonl"):
        return "jsonl"
    return None


def format_from_first_line(line: str) -> str | None:
    """The format a file's first non-empty line says (jsonl, instruct, pubtator), or None."""
    if line.startswith("{"):
        try:
            keys = json.loads(line).keys()
        except (json.JSONDecodeError, AttributeError):
            keys = set()
        return "instruct" if {"prompt", "completion"} <= set(keys) else "jsonl"
    if "|t|" in line or "|a|" in line:
        return "pubtator"
    return None


def first_line(path: str | Path, size: int = 4096) -> str:
    """The first non-empty line within a file's first ``size`` bytes ('' if none)."""
    with Path(path).open("rb") as handle:
        head = handle.read(size).decode("utf-8", errors="replace")
    return next((line for line in head.splitlines() if line.strip()), "")


def detect_format(path: str | Path) -> str:
    """Guess a file's format from its name and, for ambiguous names, its first line."""
    p = Path(path)
    by_name = format_from_name(p)
    if by_name is not None and (by_name != "jsonl" or not p.exists()):
        return by_name
    name = p.name.lower()
    if not p.exists():
        raise MednerError(f"{p}: no such file; pass --format to choose how to write it")
    by_content = format_from_first_line(first_line(p))
    if by_content is not None:
        return by_content
    if name.endswith(".txt"):
        return "brat" if p.with_suffix(".ann").exists() else "pubtator"
    raise MednerError(
        f"{p}: cannot tell the format from the name or first line; pass --format "
        f"({', '.join(sorted(FORMATS))})"
    )


def read_corpus(
    path: str | Path, fmt: str | None = None, *, on_mismatch: OnMismatch = "error"
) -> Corpus:
    p = Path(path)
    if not p.exists():
        raise FormatError(p, None, "no such file or folder")
    name = fmt or detect_format(p)
    report = ReadReport()
    documents = format_module(name).read(p, on_mismatch=on_mismatch, report=report)
    if not documents:
        raise FormatError(p, None, f"no documents found (read as {name})")
    return Corpus(documents=documents, report=report, path=str(p), format=name)


def write_corpus(documents: Iterable[Document], path: str | Path, fmt: str | None = None) -> str:
    """Write documents in ``fmt`` (guessed from ``path`` when not given); returns the format."""
    name = fmt or detect_format(path)
    format_module(name).write(list(documents), Path(path))
    return name
