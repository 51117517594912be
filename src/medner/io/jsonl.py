"""medner's native JSON Lines: one ``Document.to_dict()`` per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from medner.document import Document, Span
from medner.errors import FormatError
from medner.io.base import (
    OnMismatch,
    ReadReport,
    atomic_write,
    check_mention,
    iter_lines,
    json_object_line,
)


def parse_line(line: str, *, path: str | Path, lineno: int, on_mismatch: OnMismatch,
               report: ReadReport) -> Document:
    data = json_object_line(line, lineno, path, "'id' and 'text'")
    for key in ("id", "text"):
        if key not in data:
            raise FormatError(path, lineno, f"missing field {key!r}")
    try:
        doc = Document.from_dict({**data, "spans": []})
        spans = []
        for raw in data.get("spans", ()):
            span = Span.from_dict(raw)
            ok = all(
                check_mention(doc.text, a, b, None, path=path, line=lineno,
                              on_mismatch=on_mismatch, report=report)
                for a, b in span.pieces
            ) and check_mention(
                doc.text, span.start, span.end, None if span.fragments else span.text,
                path=path, line=lineno, on_mismatch=on_mismatch, report=report,
            )
            if ok:
                spans.append(span)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(path, lineno, f"bad document field: {exc}") from None
    return Document(doc.id, doc.text, tuple(spans), doc.relations, doc.metadata)


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """One document per non-blank line, parsed as the line is reached."""
    for lineno, line in iter_lines(path):
        if line.strip():
            yield parse_line(line, path=path, lineno=lineno, on_mismatch=on_mismatch,
                             report=report)


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def count(path: Path) -> int:
    """The number of documents, from one pass over the bytes (non-blank lines)."""
    with Path(path).open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def dumps(document: Document) -> str:
    return json.dumps(document.to_dict(), ensure_ascii=False)


def write(documents: list[Document], path: Path) -> None:
    with atomic_write(path) as handle:
        for doc in documents:
            handle.write(dumps(doc) + "\n")
