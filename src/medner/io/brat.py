"""brat standoff (MACCROBAT): ``<id>.txt`` holds the text, ``<id>.ann`` the annotations.

``read`` takes a folder (every ``*.ann`` with its ``.txt``, sorted by name), one ``.ann``
or one ``.txt``. ``T`` lines become spans (``id="T12"``; a discontinuous ``a b;c d``
keeps its ``fragments``, text = the pieces joined by one space, as brat writes it);
``R`` lines become span relations whose head/tail are the ``Arg`` ids (MACCROBAT's
relations point at events, ``E5``; ``metadata["brat_event_triggers"]`` maps each event
to its trigger ``T`` id). Role names other than Arg1/Arg2 are kept in
``metadata["brat_relation_roles"]``.

``A`` (and the older ``M``) lines become span attributes on the span they name, or on
the trigger span of the event they name (MACCROBAT: ``A3 POLARITY E5 NEG``). MACCROBAT's
``POLARITY`` and medner's own ``Assertion`` give the ``assertion`` attribute (NEG:
absent; UNCERTAIN, MAYBE_POS, MAYBE_NEG: possible; POS: present); an unknown value of
either is an error. Any other attribute is kept under its own name (``TREND``: ``INC``; a
binary one as ``"true"``). An attribute line naming a missing annotation, or an unknown
assertion value, is an error naming the file and line, or is counted and skipped under
``on_mismatch="skip"``. Each line read is kept in ``metadata["brat_attribute_lines"]``,
so that an attribute written back unchanged gives its original line; a changed or new
one is written as ``A<n><TAB>Assertion T<k> absent`` (or its own name and value).

All other lines (E, N, ``*``, ``#`` and kinds brat does not define) are kept verbatim in
``metadata["brat_other_lines"]`` and counted by kind in the report.

A ``T`` text column that matches the text only after stripping trailing whitespace
(MACCROBAT 25661749.ann T145 ends in tab + U+2005) is accepted and counted. Such lines,
like any line the writer would not reproduce from the parsed fields, are kept in
``metadata["brat_raw_lines"]`` (``{canonical line: original line}``) so that writing
gives back the original T and R lines byte for byte. The writer puts T lines first (in
span order), then R lines, then the kept other lines.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from medner.document import ABSENT, ASSERTION, POSSIBLE, PRESENT, Document, Relation, Span
from medner.errors import FormatError
from medner.io.base import (
    OnMismatch,
    ReadReport,
    atomic_write,
    check_mention,
    read_text_file,
    reject,
)

RAW_LINES = "brat_raw_lines"
OTHER_LINES = "brat_other_lines"
ROLES = "brat_relation_roles"
EVENT_TRIGGERS = "brat_event_triggers"
ATTRIBUTE_LINES = "brat_attribute_lines"

ASSERTION_NAME = "Assertion"
"""The brat attribute name medner writes for ``Span.assertion``."""
ASSERTION_VALUES = {
    "POLARITY": {"POS": PRESENT, "NEG": ABSENT, "UNCERTAIN": POSSIBLE, "MAYBE_POS": POSSIBLE,
                 "MAYBE_NEG": POSSIBLE},  # MACCROBAT
    ASSERTION_NAME: {PRESENT: PRESENT, ABSENT: ABSENT, POSSIBLE: POSSIBLE},
}
"""brat attribute names read as the assertion, with the assertion each value means."""

_KINDS = {"E": "event", "N": "normalization", "*": "equivalence", "#": "note"}
_FRAGMENT = re.compile(r"(\d+) (\d+)")
_DEFAULT_ROLES = ("Arg1", "Arg2")


def t_line(span: Span, text: str) -> str:
    pieces = ";".join(f"{a} {b}" for a, b in span.pieces)
    return f"{span.id}\t{span.label} {pieces}\t{text}"


def r_line(relation: Relation, roles: tuple[str, str] = _DEFAULT_ROLES) -> str:
    args = f"{roles[0]}:{relation.head} {roles[1]}:{relation.tail}"
    return f"{relation.id}\t{relation.label} {args}\t"


def _mention_text(text: str, pieces: tuple[tuple[int, int], ...]) -> str:
    return " ".join(text[a:b] for a, b in pieces)


class _AnnParser:
    """Turns the lines of one .ann file into spans, relations and kept metadata."""

    def __init__(self, path: Path, text: str, on_mismatch: OnMismatch, report: ReadReport):
        self.path, self.text, self.on_mismatch, self.report = path, text, on_mismatch, report
        self.spans: list[Span] = []
        self.relations: list[Relation] = []
        self.raw: dict[str, str] = {}
        self.other: list[str] = []
        self.roles: dict[str, list[str]] = {}
        self.triggers: dict[str, str] = {}
        self.attribute_lines: list[tuple[int, str]] = []  # resolved once every line is read

    def parse(self, line: str, lineno: int) -> None:
        if line.startswith("T"):
            self.parse_t(line, lineno)
        elif line.startswith("R"):
            self.parse_r(line, lineno)
        elif line[:1] in ("A", "M"):
            self.attribute_lines.append((lineno, line))
        elif line.strip():
            kind = _KINDS.get(line[0], "unknown kind")
            self.report.note(f"brat: kept {kind} lines ({line[0]})")
            self.other.append(line)
            if line[0] == "E":
                fields = line.split("\t")
                if len(fields) > 1 and ":" in fields[1]:
                    self.triggers[fields[0]] = fields[1].split()[0].split(":", 1)[1]

    def parse_t(self, line: str, lineno: int) -> None:
        fields = line.split("\t", 2)
        if len(fields) < 3 or " " not in fields[1]:
            raise FormatError(self.path, lineno, "truncated T line: expected 'T<id><TAB><type> "
                              "<start> <end>[;<start> <end>]<TAB><text>'")
        label, offsets = fields[1].split(" ", 1)
        fragments = []
        for piece in offsets.split(";"):
            match = _FRAGMENT.fullmatch(piece.strip())
            if not match:
                raise FormatError(self.path, lineno, f"non-integer offset or bad fragment "
                                  f"{piece!r} (expected '<start> <end>')")
            fragments.append((int(match[1]), int(match[2])))
        pieces = tuple(fragments)
        where = {"path": self.path, "line": lineno, "on_mismatch": self.on_mismatch,
                 "report": self.report}
        if not all(check_mention(self.text, a, b, None, **where) for a, b in pieces):
            return
        column, expected = fields[2], _mention_text(self.text, pieces)
        if column != expected:
            if column.rstrip() != expected:
                reject(f"text column {column!r} does not match the text at {offsets}: "
                       f"{expected!r}", "mention/offset mismatch", **where)
                return
            self.report.note("brat: T text column with trailing whitespace (kept for writing)",
                             f"{self.path}:{lineno}")
        span = Span(min(a for a, _ in pieces), max(b for _, b in pieces), label, expected,
                    fragments=pieces if len(pieces) > 1 else (), id=fields[0])
        self.spans.append(span)
        if t_line(span, expected) != line:
            self.raw[t_line(span, expected)] = line

    def parse_r(self, line: str, lineno: int) -> None:
        fields = line.split("\t")
        parts = fields[1].split() if len(fields) > 1 else []
        args = [p.split(":", 1) for p in parts[1:]]
        if len(parts) != 3 or any(len(a) != 2 for a in args):
            raise FormatError(self.path, lineno,
                              "bad R line: expected 'R<id><TAB><type> Arg1:<id> Arg2:<id>'")
        (role1, head), (role2, tail) = args
        relation = Relation(parts[0], head, tail, "span", id=fields[0])
        self.relations.append(relation)
        if (role1, role2) != _DEFAULT_ROLES:
            self.roles[relation.id] = [role1, role2]
        canonical = r_line(relation, (role1, role2))
        if canonical != line:
            self.raw[canonical] = line

    def attribute(self, line: str, lineno: int, span_ids: set[str | None]
                  ) -> tuple[str, str, str] | None:
        """(T id, attribute name, value) of an ``A``/``M`` line, or None when skipped."""
        fields = line.split("\t")
        parts = fields[1].split() if len(fields) > 1 else []
        if len(parts) not in (2, 3):
            raise FormatError(self.path, lineno, "bad attribute line: expected "
                              "'A<id><TAB><name> <annotation id>[ <value>]'")
        name, target, value = parts[0], parts[1], parts[2] if len(parts) == 3 else "true"
        where = {"path": self.path, "line": lineno, "on_mismatch": self.on_mismatch,
                 "report": self.report}
        span_id = self.triggers.get(target, target)
        if span_id not in span_ids:
            reject(f"attribute {name} names {target}, which is no span or event of this file",
                   "attribute of a missing annotation", **where)
            return None
        if name in ASSERTION_VALUES:
            meanings = ASSERTION_VALUES[name]
            if value not in meanings:
                reject(f"unknown {name} value {value!r}; expected one of "
                       f"{', '.join(meanings)}", "unknown attribute value", **where)
                return None
            name, value = ASSERTION, meanings[value]
        return span_id, name, value

    def document(self, doc_id: str) -> Document:
        attributes: dict[str, list[tuple[str, str]]] = {}
        kept = []
        span_ids = {s.id for s in self.spans}
        for lineno, line in self.attribute_lines:
            found = self.attribute(line, lineno, span_ids)
            if found is not None:
                self.report.note(f"brat: attribute lines read as span attributes ({line[0]})")
                attributes.setdefault(found[0], []).append(found[1:])
                kept.append([*found, line])
        spans = [replace(s, attributes=tuple(attributes[s.id])) if s.id in attributes else s
                 for s in self.spans]
        metadata: dict = {}
        for key, value in ((RAW_LINES, self.raw), (OTHER_LINES, self.other), (ROLES, self.roles),
                           (EVENT_TRIGGERS, self.triggers), (ATTRIBUTE_LINES, kept)):
            if value:
                metadata[key] = value
        return Document(doc_id, self.text, tuple(spans), tuple(self.relations), metadata)


def read_pair(txt: Path, ann: Path, *, on_mismatch: OnMismatch, report: ReadReport) -> Document:
    for required in (txt, ann):
        if not required.is_file():
            raise FormatError(required, None, "missing: brat needs both <id>.txt and <id>.ann")
    parser = _AnnParser(ann, read_text_file(txt), on_mismatch, report)
    for lineno, line in enumerate(read_text_file(ann, allow_empty=True).split("\n"), start=1):
        parser.parse(line, lineno)
    return parser.document(txt.stem)


def _annotation_files(path: Path, report: ReadReport) -> list[Path]:
    """The ``.ann`` files a path names: a folder's, sorted by name, or the one of a pair."""
    if not path.is_dir():
        return [path.with_suffix(".ann")]
    for txt in sorted(path.glob("*.txt")):
        if not txt.with_suffix(".ann").exists():
            report.note("skipped: .txt without .ann", str(txt))
    return sorted(path.glob("*.ann"))


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """A folder's pairs in name order (or the pair of one ``.ann``/``.txt``), one at a time."""
    for ann in _annotation_files(Path(path), report):
        yield read_pair(ann.with_suffix(".txt"), ann, on_mismatch=on_mismatch, report=report)


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def count(path: Path) -> int:
    """The number of documents: ``.ann`` files, without reading them."""
    return len(_annotation_files(Path(path), ReadReport()))


def _file_stems(documents: list[Document]) -> list[str]:
    """Safe, distinct file names: ids with path characters replaced, repeats numbered."""
    seen: Counter[str] = Counter()
    stems = []
    for doc in documents:
        stem = re.sub(r"[^\w.-]", "_", doc.id).lstrip(".") or "doc"
        seen[stem] += 1
        stems.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return stems


def _fresh_ids(prefix: str, existing: list[str | None]) -> Iterator[str]:
    """``T7``, ``T8``, ... numbered after the highest id already in use."""
    used = [int(i[1:]) for i in existing if i and re.fullmatch(prefix + r"\d+", i)]
    return (f"{prefix}{n}" for n in itertools.count(max(used, default=0) + 1))


def format_ann(doc: Document, skipped: Counter[str]) -> str:
    """The .ann content; spans and relations without a brat ``T``/``R`` id get fresh ones."""
    raw = doc.metadata.get(RAW_LINES, {})
    fresh_t = _fresh_ids("T", [s.id for s in doc.spans])
    fresh_r = _fresh_ids("R", [r.id for r in doc.relations])
    renamed: dict[str, str] = {}
    lines = []
    references: list[tuple[str, str]] = []  # (T id, concept ID) of linked spans
    written = []
    for span in doc.spans:
        if not (span.id and re.fullmatch(r"T\w+", span.id)):
            new_id = next(fresh_t)
            if span.id is not None:
                renamed[span.id] = new_id
            span = replace(span, id=new_id)
        line = t_line(span, _mention_text(doc.text, span.pieces).replace("\n", " "))
        lines.append(raw.get(line, line))
        written.append(span)
        references.extend((span.id, concept) for concept in span.ids)
    roles = doc.metadata.get(ROLES, {})
    for relation in doc.relations:
        if relation.args != "span":
            skipped["concept relations not written (brat relates annotations)"] += 1
            continue
        rel_id = relation.id if relation.id and re.fullmatch(r"R\w+", relation.id) else None
        relation = Relation(relation.label, renamed.get(relation.head, relation.head),
                            renamed.get(relation.tail, relation.tail), "span",
                            rel_id or next(fresh_r))
        line = r_line(relation, tuple(roles.get(relation.id, _DEFAULT_ROLES)))
        lines.append(raw.get(line, line))
    lines.extend(doc.metadata.get(OTHER_LINES, ()))
    lines.extend(attribute_lines(written, doc.metadata.get(ATTRIBUTE_LINES, ())))
    fresh_n = _fresh_ids("N", [line.split("\t", 1)[0] for line in lines])
    names = doc.metadata.get("concepts", {})
    lines.extend(f"{next(fresh_n)}\tReference {span_id} {_reference(concept)}\t"
                 f"{names.get(concept, '')}" for span_id, concept in references)
    return "".join(line + "\n" for line in lines)


def attribute_lines(spans, read_lines) -> list[str]:
    """An ``A`` line per span attribute: the line it was read from when it is unchanged, else
    a fresh one (the assertion under ``ASSERTION_NAME``)."""
    original = {(span_id, name, value): line for span_id, name, value, line in read_lines}
    fresh = _fresh_ids("A", [line.split("\t", 1)[0] for line in original.values()])
    lines = []
    for span in spans:
        for name, value in span.attributes:
            line = original.get((span.id, name, value))
            if line is None:
                brat_name = ASSERTION_NAME if name == ASSERTION else name
                shown = "" if value == "true" and name != ASSERTION else f" {value}"
                line = f"{next(fresh)}\t{brat_name} {span.id}{shown}"
            lines.append(line)
    return lines


def _reference(concept: str) -> str:
    """brat's ``DB:ID``: an ID that names its database keeps it; MeSH IDs get ``MESH:``."""
    if ":" in concept:
        return concept
    return f"MESH:{concept}" if re.fullmatch(r"[CD]\d{6,9}", concept) else f"ID:{concept}"


def write(documents: list[Document], path: Path) -> None:
    """Write ``<id>.txt`` and ``<id>.ann`` per document into the folder ``path``."""
    path = Path(path)
    skipped: Counter[str] = Counter()
    stems = _file_stems(documents)
    renamed = sum(stem != doc.id for stem, doc in zip(stems, documents, strict=True))
    if renamed:
        skipped["documents whose file name differs from their id"] = renamed
    for stem, doc in zip(stems, documents, strict=True):
        with atomic_write(path / f"{stem}.txt") as handle:
            handle.write(doc.text)
        with atomic_write(path / f"{stem}.ann") as handle:
            handle.write(format_ann(doc, skipped))
    if skipped:
        details = "; ".join(f"{n} {what}" for what, n in skipped.items())
        warnings.warn(f"{path}: {details}", stacklevel=2)
