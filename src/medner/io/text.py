"""Plain text: the whole file is one document, named by the file's stem. Read only.

This is how ``medner extract --input notes.txt`` reads a ``.txt`` that is neither PubTator
nor half of a brat pair (``detect_format(path, plain_text=True)``). ``iter_paragraphs``
reads the other plain text layout, one document per paragraph, as pretraining texts are.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from medner.document import Document
from medner.io.base import OnMismatch, ReadReport, iter_lines, read_text_file


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """One document: the file's text, untouched. ``on_mismatch`` is unused (no mentions)."""
    path = Path(path)
    yield Document(path.stem, read_text_file(path))


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def count(path: Path) -> int:
    return 1


def iter_paragraphs(path: str | Path) -> Iterator[Document]:
    """One document per paragraph (text between empty lines, stripped), named
    ``<stem>:<n>``, read line by line; a file without text is an error."""
    path = Path(path)
    lines: list[str] = []
    number = 0
    for _, line in itertools.chain(iter_lines(path), [(None, "")]):  # "": the last one ends
        if line:
            lines.append(line)
            continue
        text = "\n".join(lines).strip()
        lines = []
        if text:
            number += 1
            yield Document(f"{path.stem}:{number}", text)
