"""Shared pieces of every reader and writer: the read report, mismatch policy, atomic output."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from medner.document import Document
from medner.errors import FormatError, MednerError

OnMismatch = Literal["error", "skip"]


@dataclass
class ReadReport:
    """What a reader skipped, kept aside or could not ground, by kind: nothing goes silently."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """A few located messages (file:line: what) for the first skipped items."""

    def note(self, kind: str, where: str | None = None, max_examples: int = 20) -> None:
        self.counts[kind] += 1
        if where is not None and len(self.examples) < max_examples:
            self.examples.append(f"{where}: {kind}")

    def merge(self, other: ReadReport) -> None:
        self.counts.update(other.counts)
        self.examples.extend(other.examples[: max(0, 20 - len(self.examples))])


@dataclass
class Corpus:
    documents: list[Document]
    report: ReadReport
    path: str = ""
    format: str = ""


def read_text_file(path: str | Path, *, allow_empty: bool = False) -> str:
    """Read a UTF-8 file; a bad byte is an error naming file and line, an empty file too.

    ``allow_empty`` is for files where "nothing" is valid content (an unannotated brat .ann).
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FormatError(
            path, line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not allow_empty and not text.strip():
        raise FormatError(path, None, "file is empty")
    return text


def iter_lines(path: str | Path, *, allow_empty: bool = False) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its ``\\n``) of a UTF-8 file, read as iterated.

    Lines are split on ``\\n`` only (``str.splitlines`` would also break at ``\\x0b``,
    ``\\x1c`` or U+2028 inside a title or a JSON string). A bad byte is an error naming file
    and line when iteration reaches it; a file of blank lines only is an error at its end
    (unless ``allow_empty``), as in ``read_text_file``.
    """
    blank = True
    with Path(path).open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").removesuffix("\n")
            except UnicodeDecodeError as exc:
                raise FormatError(path, lineno, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} "
                                  f"at column {exc.start + 1})") from None
            blank = blank and not line.strip()
            yield lineno, line
    if blank and not allow_empty:
        raise FormatError(path, None, "file is empty")


def json_object_line(line: str, lineno: int, path: str | Path, fields: str) -> dict[str, Any]:
    """The JSON object on one line of a JSONL file; errors name the file, line and ``fields``
    (what the object should hold)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FormatError(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise FormatError(path, lineno, f"expected a JSON object with {fields}")
    return data


def check_mention(
    doc_text: str,
    start: int,
    end: int,
    mention: str | None,
    *,
    path: str | Path,
    line: int | None,
    on_mismatch: OnMismatch,
    report: ReadReport,
) -> bool:
    """True when the offsets are inside the text and reproduce ``mention`` (if given).

    A failure raises a ``FormatError`` naming file and line, or with ``on_mismatch="skip"``
    is counted in ``report`` and returns False so the caller drops the mention.
    """
    if not 0 <= start < end <= len(doc_text):
        problem = f"offsets {start}-{end} outside the document text (length {len(doc_text)})"
        kind = "offset outside text"
    elif mention is not None and doc_text[start:end] != mention:
        problem = (
            f"mention {mention!r} does not match the text at {start}-{end}: {doc_text[start:end]!r}"
        )
        kind = "mention/offset mismatch"
    else:
        return True
    return reject(problem, kind, path=path, line=line, on_mismatch=on_mismatch, report=report)


def reject(
    problem: str,
    kind: str,
    *,
    path: str | Path,
    line: int | None,
    on_mismatch: OnMismatch,
    report: ReadReport,
) -> bool:
    """Apply the mismatch policy to a bad mention: raise, or count it and return False."""
    if on_mismatch == "error":
        raise FormatError(path, line, problem + " (use --on-mismatch skip to skip such mentions)")
    report.note(f"skipped: {kind}", f"{path}:{line}")
    return False


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place on success.

    An interrupted write leaves the previous file (or none), never half a file.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise MednerError(f"{target}: cannot write here ({exc.strerror or exc})") from None
    try:
        encoding = None if "b" in mode else "utf-8"
        newline = None if "b" in mode else ""
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
