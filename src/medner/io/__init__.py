"""Corpus formats, looked up by name. Every reader yields Documents, every writer takes them.

Each format is a module in this package with

    iter_read(path, *, on_mismatch, report) -> Iterator[Document]   (a generator)
    read(path, *, on_mismatch, report) -> list[Document]
    write(documents, path) -> None          (atomic: a temp file renamed into place)
    count(path) -> int                      (optional: a cheap count, without parsing)

``text`` and ``parquet`` are read only. ``iter_documents`` is the one way in for a stream
of documents (``read_corpus`` collects it): line formats (JSONL, PubTator, CoNLL) are read
line by line, BioC XML and brat folders document by document, Parquet by record batch, so
memory stays flat in a file's size and a bad line late in a file is an error only when the
iteration reaches it. Instruct JSONL reads all its records first (an article's records may
stand anywhere in the file) and grounds one article per step.

Modules are imported lazily so that reading JSONL never imports the BioC library.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Iterator
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
    "text": "medner.io.text",
    "parquet": "medner.io.parquet",
}
PLAIN_TEXT = "text"

__all__ = [
    "FORMATS",
    "PLAIN_TEXT",
    "Corpus",
    "ReadReport",
    "atomic_write",
    "count_documents",
    "detect_format",
    "first_line",
    "format_from_first_line",
    "format_from_name",
    "format_module",
    "iter_documents",
    "read_corpus",
    "read_text_file",
    "resolve_format",
    "write_corpus",
]


def _check_name(name: str) -> str:
    if name not in FORMATS:
        raise MednerError(f"unknown format {name!r}; choose one of: {', '.join(sorted(FORMATS))}")
    return name


def format_module(name: str) -> ModuleType:
    return importlib.import_module(FORMATS[_check_name(name)])


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
    if name.endswith(".parquet"):
        return "parquet"
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


def _looks_plain_text(path: str | Path) -> bool:
    """A ``.txt`` file with no brat ``.ann`` beside it and no PubTator header in its first lines."""
    p = Path(path)
    if p.suffix.lower() != ".txt" or not p.is_file() or p.with_suffix(".ann").exists():
        return False
    with p.open("rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="replace")
    return not any("|t|" in line or "|a|" in line for line in head.splitlines()[:3])


def detect_format(path: str | Path, *, plain_text: bool = False) -> str:
    """Guess a file's format from its name and, for ambiguous names, its first line.

    With ``plain_text`` (texts to extract from), a ``.txt`` that is neither half of a brat
    pair nor PubTator is ``text``; without it (annotated corpora) such a file is PubTator.
    """
    p = Path(path)
    if plain_text and _looks_plain_text(p):
        return PLAIN_TEXT
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


def resolve_format(path: str | Path, fmt: str | None = None, *, plain_text: bool = False) -> str:
    """The format to read an existing ``path`` in: ``fmt`` checked, else ``detect_format``
    (with its ``plain_text``). Only brat reads a folder."""
    p = Path(path)
    if fmt is not None:
        _check_name(fmt)
    if not p.exists():
        raise FormatError(p, None, "no such file or folder")
    name = fmt or detect_format(p, plain_text=plain_text)
    if p.is_dir() and name != "brat":
        raise FormatError(p, None, f"is a folder; {name} input must be a file")
    return name


def iter_documents(path: str | Path, fmt: str | None = None, *,
                   on_mismatch: OnMismatch = "error", report: ReadReport | None = None,
                   plain_text: bool = False) -> Iterator[Document]:
    """The documents of one file or folder in ``fmt`` (guessed when not given), streamed.

    The path and format are checked now; the file is read as the iterator is consumed (see
    the module docstring), and what the reader skipped or could not ground is counted in
    ``report``. An input without documents is an error at the end of the iteration.
    ``plain_text`` is ``detect_format``'s.
    """
    p = Path(path)
    name = resolve_format(p, fmt, plain_text=plain_text)
    stream = format_module(name).iter_read(
        p, on_mismatch=on_mismatch, report=report if report is not None else ReadReport())
    return _at_least_one(stream, p, name)


def _at_least_one(documents: Iterator[Document], path: Path, name: str) -> Iterator[Document]:
    found = False
    for doc in documents:
        found = True
        yield doc
    if not found:
        raise FormatError(path, None, f"no documents found (read as {name})")


def count_documents(path: str | Path, fmt: str | None = None, *,
                    plain_text: bool = False) -> int | None:
    """A cheap count (for a progress bar: no parsing), or ``None`` where the format has none."""
    p = Path(path)
    count = getattr(format_module(resolve_format(p, fmt, plain_text=plain_text)), "count", None)
    return count(p) if count is not None else None


def read_corpus(
    path: str | Path, fmt: str | None = None, *, on_mismatch: OnMismatch = "error"
) -> Corpus:
    p = Path(path)
    name = resolve_format(p, fmt)
    report = ReadReport()
    documents = list(iter_documents(p, name, on_mismatch=on_mismatch, report=report))
    return Corpus(documents=documents, report=report, path=str(p), format=name)


def write_corpus(documents: Iterable[Document], path: str | Path, fmt: str | None = None) -> str:
    """Write documents in ``fmt`` (guessed from ``path`` when not given); returns the format."""
    name = fmt or detect_format(path)
    module = format_module(name)
    if not hasattr(module, "write"):
        writable = sorted(n for n in FORMATS if hasattr(format_module(n), "write"))
        raise MednerError(f"{path}: {name} is read only; write one of: {', '.join(writable)}")
    module.write(list(documents), Path(path))
    return name
