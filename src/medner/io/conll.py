"""CoNLL-style BIO token files: ``token [columns ...] tag`` per line.

Reading: the first column is the token, the last the tag; a blank line ends a sentence,
a ``-DOCSTART-`` line a document (a file without one is one document). The text is
rebuilt with one space between tokens and a newline between sentences, so offsets index
that text, not the text the tokens came from. BIO and IOB1 are both read: an ``I-X``
that does not continue an ``X`` entity starts one (as IOB1 intends) and is counted, since
in a BIO file it is an error. Documents are named ``<file stem>:<n>``.

Writing: see ``tokenize`` and ``to_bio``. Each document starts with ``-DOCSTART-\\tO``;
lines are ``token\\tTAG`` (BIO). Document ids are not written. Mentions BIO cannot hold
(discontinuous, overlapping an earlier one, covering no token) are left out and reported
through one ``warnings.warn`` per file with their counts.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from medner.document import Document, Span
from medner.errors import FormatError
from medner.io.base import OnMismatch, ReadReport, atomic_write, iter_lines

DOCSTART = "-DOCSTART-"

# A token is a run of word characters or one other non-space character. Zero-width spaces
# separate tokens: written inside a token they would be invisible, and kept, on re-reading.
_TOKEN = re.compile(r"\w+|[^\w\s\u200b\u200c\u200d\u2060\ufeff]")
_SENTENCE_END = (".", "!", "?")


class _DocumentBuilder:
    """Collects tokens and open entities of one document while its lines are read."""

    def __init__(self, path: Path, report: ReadReport) -> None:
        self.path, self.report = path, report
        self.text = ""
        self.spans: list[Span] = []
        self.in_sentence = False
        self.open: tuple[int, int, str] | None = None  # start, end, label

    def close_entity(self) -> None:
        if self.open is not None:
            start, end, label = self.open
            self.spans.append(Span(start, end, label, self.text[start:end]))
            self.open = None

    def end_sentence(self) -> None:
        self.close_entity()
        self.in_sentence = False

    def add(self, token: str, tag: str, lineno: int) -> None:
        if self.text:
            self.text += " " if self.in_sentence else "\n"
        self.in_sentence = True
        start = len(self.text)
        self.text += token
        if tag == "O":
            self.close_entity()
            return
        prefix, _, label = tag.partition("-")
        if prefix not in ("B", "I") or not label:
            raise FormatError(self.path, lineno, f"tag {tag!r} is not O, B-<type> or I-<type>")
        if prefix == "I" and self.open is not None and self.open[2] == label:
            self.open = (self.open[0], len(self.text), label)
            return
        if prefix == "I":
            self.report.note("I- tag not continuing an entity of its type (read as B-)",
                             f"{self.path}:{lineno}")
        self.close_entity()
        self.open = (start, len(self.text), label)

    def document(self, number: int) -> Document:
        self.end_sentence()
        return Document(f"{self.path.stem}:{number}", self.text, tuple(self.spans))


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """Read a BIO/IOB1 file, one document per ``-DOCSTART-`` section as it ends.

    ``on_mismatch`` is unused: the text is built from the tokens."""
    path = Path(path)
    number = 0
    builder = _DocumentBuilder(path, report)
    for lineno, line in iter_lines(path):
        columns = line.split()
        if not columns:
            builder.end_sentence()
        elif columns[0] == DOCSTART:
            if builder.text:
                number += 1
                yield builder.document(number)
            builder = _DocumentBuilder(path, report)
        elif len(columns) < 2:
            raise FormatError(path, lineno, f"expected a token and a tag, got {line.strip()!r}")
        else:
            builder.add(columns[0], columns[-1], lineno)
    if builder.text:
        yield builder.document(number + 1)


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def tokenize(text: str, boundaries: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """(start, end) tokens: runs of word characters and single punctuation characters.

    A token is also cut at every offset in ``boundaries`` (the writer passes the span
    edges), so a mention inside a word ("hypertensive" in "antihypertensive") still maps
    to whole tokens instead of being lost to misalignment.
    """
    tokens = []
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        cuts = sorted(b for b in boundaries if start < b < end)
        for a, b in zip([start, *cuts], [*cuts, end], strict=True):
            tokens.append((a, b))
    return tokens


def _writable_spans(doc: Document, dropped: Counter[str]) -> list[Span]:
    """Contiguous, non-overlapping spans; the earlier (then longer) one wins an overlap."""
    kept: list[Span] = []
    for span in sorted(doc.spans, key=lambda s: (s.start, -s.end)):
        if span.fragments:
            dropped["discontinuous mentions"] += 1
        elif kept and span.start < kept[-1].end:
            dropped["mentions overlapping an earlier one"] += 1
        else:
            kept.append(span)
    return kept


def _starts_sentence(text: str, before: tuple[int, int], token: tuple[int, int],
                     inside_span: bool) -> bool:
    if inside_span:
        return False
    gap = text[before[1]:token[0]]
    return "\n" in gap or (gap != "" and text[before[0]:before[1]] in _SENTENCE_END
                           and text[token[0]].isupper())


def to_bio(doc: Document, dropped: Counter[str]) -> list[list[tuple[int, int, str]]]:
    """The document as sentences of (start, end, BIO tag) tokens; counts unwritable spans.

    Sentences break at line breaks, and after ``.``/``!``/``?`` followed by space and an
    upper-case letter, but never inside a mention.
    """
    spans = _writable_spans(doc, dropped)
    tokens = tokenize(doc.text, frozenset(x for s in spans for x in (s.start, s.end)))
    tags = ["O"] * len(tokens)
    inside = [False] * len(tokens)  # token continues the mention of the token before it
    index = 0
    for span in spans:
        while index < len(tokens) and tokens[index][0] < span.start:
            index += 1
        first = index
        while index < len(tokens) and tokens[index][1] <= span.end:
            tags[index] = ("B-" if index == first else "I-") + span.label
            inside[index] = index > first
            index += 1
        if index == first:
            dropped["mentions covering no token"] += 1
    sentences: list[list[tuple[int, int, str]]] = []
    for i, (token, tag) in enumerate(zip(tokens, tags, strict=True)):
        if i == 0 or _starts_sentence(doc.text, tokens[i - 1], token, inside[i]):
            sentences.append([])
        sentences[-1].append((*token, tag))
    return sentences


def write(documents: list[Document], path: Path) -> None:
    dropped: Counter[str] = Counter()
    with atomic_write(path) as handle:
        for doc in documents:
            handle.write(f"{DOCSTART}\tO\n\n")
            for sentence in to_bio(doc, dropped):
                handle.writelines(f"{doc.text[a:b]}\t{tag}\n" for a, b, tag in sentence)
                handle.write("\n")
    if dropped:
        details = "; ".join(f"{n} {what}" for what, n in dropped.items())
        warnings.warn(f"{path}: not representable in BIO, not written: {details}", stacklevel=2)
