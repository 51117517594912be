"""brat standoff (MACCROBAT): ``<id>.txt`` holds the text, ``<id>.ann`` the annotations.

``read`` takes a folder (every ``*.ann`` with its ``.txt``, sorted by name), one ``.ann``
or one ``.txt``. ``T`` lines become spans (``id="T12"``; a discontinuous ``a b;c d``
keeps its ``fragments``, text = the pieces joined by one space, as brat writes it);
``R`` lines become span relations whose head/tail are the ``Arg`` ids (MACCROBAT's
relations point at events, ``E5``; ``metadata["brat_event_triggers"]`` maps each event
to its trigger ``T`` id). Role names other than Arg1/Arg2 are kept in
``metadata["brat_relation_roles"]``. All other lines (E, A, M, N, ``*``, ``#`` and kinds
brat does not define) are kept verbatim in ``metadata["brat_other_lines"]`` and counted
by kind in the report.

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
from pathlib import Path

from medner.document import Document, Relation, Span
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

_KINDS = {"E": "event", "A": "attribute", "M": "attribute", "N": "normalization",
          "*": "equivalence", "#": "note"}
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

    def parse(self, line: str, lineno: int) -> None:
        if line.startswith("T"):
            self.parse_t(line, lineno)
        elif line.startswith("R"):
            self.parse_r(line, lineno)
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

    def document(self, doc_id: str) -> Document:
        metadata: dict = {}
        for key, value in ((RAW_LINES, self.raw), (OTHER_LINES, self.other), (ROLES, self.roles),
                           (EVENT_TRIGGERS, self.triggers)):
            if value:
                metadata[key] = value
        return Document(doc_id, self.text, tuple(self.spans), tuple(self.relations), metadata)


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
    for span in doc.spans:
        if not (span.id and re.fullmatch(r"T\w+", span.id)):
            new_id = next(fresh_t)
            if span.id is not None:
                renamed[span.id] = new_id
            span = Span(span.start, span.end, span.label, span.text, span.ids,
                        fragments=span.fragments, id=new_id)
        line = t_line(span, _mention_text(doc.text, span.pieces).replace("\n", " "))
        lines.append(raw.get(line, line))
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
    fresh_n = _fresh_ids("N", [line.split("\t", 1)[0] for line in lines])
    names = doc.metadata.get("concepts", {})
    lines.extend(f"{next(fresh_n)}\tReference {span_id} {_reference(concept)}\t"
                 f"{names.get(concept, '')}" for span_id, concept in references)
    return "".join(line + "\n" for line in lines)


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
