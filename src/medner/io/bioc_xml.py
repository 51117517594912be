"""BioC XML through the ``bioc`` library.

Reading: a document's text is its passages (or, for a passage without text, its
sentences) placed at their offsets, gaps padded with spaces, so BioC's document-level
offsets index ``Document.text`` directly. Annotations from every level become spans:
infon ``type`` -> label, infon ``identifier`` or ``MESH`` -> ``ids`` (``|``-separated,
``-1`` = none), several locations -> ``fragments``, annotation id -> ``Span.id``.
Relations with two nodes become span relations (head, tail = the nodes' refids); without
nodes they are concept relations read from infons ``head``/``tail``, or from the two
infons besides ``type``/``relation`` (the BC5CDR style ``Chemical``/``Disease``).

Writing puts each annotation in the passage holding its start and relations at document
level. The passage layout is taken from ``metadata["bioc_passages"]`` (kept when read),
else the PubTator title/abstract split, else one passage; ``score`` and ``extra`` go to
infons of those names, and each span attribute (``assertion`` ...) to an infon of its name;
every other annotation infon is read back as an attribute, so reading a written file
gives back equal Documents. The output
has an empty ``<date>`` so that writing the same documents gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from medner.document import Document, Relation, Span
from medner.errors import FormatError, MednerError
from medner.io.base import OnMismatch, ReadReport, atomic_write, check_mention
from medner.io.pubtator import TITLE_LENGTH, parse_ids

PASSAGES = "bioc_passages"
INFONS = "bioc_infons"

_ID_INFONS = ("identifier", "mesh")
_LABEL_INFONS = ("type", "relation")
_SPAN_INFONS = frozenset({"type", *_ID_INFONS, "score", "extra"})


@dataclass
class _Lines:
    """Source lines of one <document>: the bioc objects do not keep them."""

    document: int
    passages: list[int]
    annotations: dict[str, int]


def _source_lines(doc: Any) -> _Lines:
    annotations: dict[str, int] = {}
    for ann in doc.iter("annotation"):
        annotations.setdefault(ann.get("id", ""), ann.sourceline)
    return _Lines(doc.sourceline, [p.sourceline for p in doc.iter("passage")], annotations)


def _document_elements(path: Path) -> Iterator[Any]:
    """The ``<document>`` children of the root, each parsed when reached and freed after."""
    depth = 0
    try:
        for event, element in etree.iterparse(str(path), events=("start", "end")):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 1:  # a child of the root: a document, or the collection's source etc.
                if element.tag == "document":
                    yield element
                element.clear(keep_tail=True)
                while element.getprevious() is not None:
                    del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise FormatError(path, exc.lineno, f"not well-formed XML: {exc.msg}") from None


def _decode(bioc: Any, element: Any, path: Path) -> Any:
    """The bioc library's ``BioCDocument`` of one ``<document>`` element."""
    xml = etree.tostring(element, encoding="unicode", with_tail=False)
    try:
        (bdoc,) = bioc.biocxml.loads(f"<collection>{xml}</collection>").documents
    except (KeyError, TypeError, ValueError) as exc:
        message = f"not a BioC collection ({type(exc).__name__}: {exc})"
        raise FormatError(path, element.sourceline, message) from None
    return bdoc


def _infon(infons: dict[str, str], names: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): v for k, v in infons.items()}
    return next((lowered[n] for n in names if lowered.get(n)), None)


def _document_text(bdoc: Any, lines: _Lines, path: Path) -> tuple[str, list[list[Any]]]:
    """The text, and each passage's [offset, length, infons] (length covers its sentences)."""
    text = ""
    layout = []
    for passage, line in zip(bdoc.passages, lines.passages, strict=True):
        parts = [(passage.offset, passage.text)] if passage.text or not passage.sentences else [
            (s.offset, s.text) for s in passage.sentences]
        for offset, part in parts:
            if offset < len(text):
                raise FormatError(path, line, f"document {bdoc.id}: text at offset {offset} "
                                  f"overlaps the text before it (which ends at {len(text)})")
            text += " " * (offset - len(text)) + (part or "")
        layout.append([passage.offset, max(0, len(text) - passage.offset), dict(passage.infons)])
    return text, layout


def _collected(bdoc: Any, kind: str) -> list[Any]:
    """The ``kind`` ("annotations" or "relations") of every sentence, passage and the
    document itself, in that order."""
    out = []
    for passage in bdoc.passages:
        for sentence in passage.sentences:
            out.extend(getattr(sentence, kind))
        out.extend(getattr(passage, kind))
    return out + list(getattr(bdoc, kind))


def _annotations(bdoc: Any) -> list[Any]:
    return _collected(bdoc, "annotations")


def _relations(bdoc: Any) -> list[Any]:
    return _collected(bdoc, "relations")


def _span(ann: Any, text: str, *, path: Path, line: int | None, on_mismatch: OnMismatch,
          report: ReadReport) -> Span | None:
    label = _infon(ann.infons, ("type",))
    if label is None or not ann.locations:
        raise FormatError(path, line, f"annotation {ann.id!r} needs a 'type' infon and a location")
    pieces = tuple((loc.offset, loc.offset + loc.length) for loc in ann.locations)
    where = {"path": path, "line": line, "on_mismatch": on_mismatch, "report": report}
    if not all(check_mention(text, a, b, None, **where) for a, b in pieces):
        return None
    if len(pieces) == 1 and not check_mention(text, *pieces[0], ann.text, **where):
        return None
    score = ann.infons.get("score")
    return Span(
        start=min(a for a, _ in pieces),
        end=max(b for _, b in pieces),
        label=label,
        text=ann.text if ann.text is not None else " ".join(text[a:b] for a, b in pieces),
        ids=parse_ids(_infon(ann.infons, _ID_INFONS) or ""),
        fragments=pieces if len(pieces) > 1 else (),
        score=float(score) if score is not None else None,
        id=ann.id or None,
        extra=tuple((ann.infons["extra"] or "").split("\t")) if "extra" in ann.infons else (),
        attributes=tuple((k, v) for k, v in ann.infons.items()
                         if k.lower() not in _SPAN_INFONS and v is not None),
    )


def _relation(brel: Any, *, path: Path, line: int, report: ReadReport) -> Relation | None:
    label = _infon(brel.infons, _LABEL_INFONS)
    if label is None:
        raise FormatError(path, line, f"relation {brel.id!r} has no 'type' or 'relation' infon")
    rel_id = brel.id or None
    if len(brel.nodes) == 2:
        return Relation(label, brel.nodes[0].refid, brel.nodes[1].refid, "span", rel_id)
    if not brel.nodes:
        if "head" in brel.infons and "tail" in brel.infons:
            return Relation(label, brel.infons["head"], brel.infons["tail"], "concept", rel_id)
        others = [v for k, v in brel.infons.items() if k.lower() not in _LABEL_INFONS]
        if len(others) == 2:
            return Relation(label, others[0], others[1], "concept", rel_id)
    report.note("skipped: relation without two nodes or two concept infons",
                f"{path}:{line} (relation {brel.id})")
    return None


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """The documents in file order, each parsed (lxml, then the bioc library) when reached."""
    import bioc  # lazy: only BioC users pay for the import

    path = Path(path)
    with path.open("rb") as handle:
        if not any(chunk.strip() for chunk in iter(lambda: handle.read(1 << 16), b"")):
            raise FormatError(path, None, "file is empty")
    for element in _document_elements(path):
        lines = _source_lines(element)
        bdoc = _decode(bioc, element, path)
        text, layout = _document_text(bdoc, lines, path)
        spans = []
        for ann in _annotations(bdoc):
            span = _span(ann, text, path=path, line=lines.annotations.get(ann.id or ""),
                         on_mismatch=on_mismatch, report=report)
            if span is not None:
                spans.append(span)
        relations = [r for r in (_relation(b, path=path, line=lines.document, report=report)
                                 for b in _relations(bdoc)) if r is not None]
        metadata: dict[str, Any] = {PASSAGES: layout}
        if bdoc.infons:
            metadata[INFONS] = dict(bdoc.infons)
        yield Document(bdoc.id or "", text, tuple(spans), tuple(relations), metadata)


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def _layout(doc: Document) -> list[tuple[int, int, dict[str, str]]]:
    """(offset, length, infons) of each passage to write."""
    kept = doc.metadata.get(PASSAGES)
    if kept and all(0 <= o and o + n <= len(doc.text) for o, n, _ in kept):
        return [(o, n, dict(infons)) for o, n, infons in kept]
    title = doc.metadata.get(TITLE_LENGTH)
    if isinstance(title, int) and doc.text[title:title + 1] == " ":
        return [(0, title, {"type": "title"}),
                (title + 1, len(doc.text) - title - 1, {"type": "abstract"})]
    return [(0, len(doc.text), {})]


def _encode_span(bioc: Any, span: Span) -> Any:
    ann = bioc.BioCAnnotation()
    ann.id = span.id or ""
    ann.text = span.text
    ann.infons["type"] = span.label
    if span.ids:
        ann.infons["identifier"] = "|".join(span.ids)
    if span.score is not None:
        ann.infons["score"] = repr(span.score)
    if span.extra:
        ann.infons["extra"] = "\t".join(span.extra)
    for name, value in span.attributes:
        if name.lower() in _SPAN_INFONS:
            raise MednerError(f"span {span.text!r} at {span.start}-{span.end}: its attribute "
                              f"{name!r} would overwrite the BioC infon of that name")
        ann.infons[name] = value
    for a, b in span.pieces:
        ann.add_location(bioc.BioCLocation(a, b - a))
    return ann


def _encode_relation(bioc: Any, relation: Relation) -> Any:
    rel = bioc.BioCRelation()
    rel.id = relation.id or ""
    rel.infons["type"] = relation.label
    if relation.args == "span":
        rel.add_node(bioc.BioCNode(relation.head, "Arg1"))
        rel.add_node(bioc.BioCNode(relation.tail, "Arg2"))
    else:
        rel.infons["head"] = relation.head
        rel.infons["tail"] = relation.tail
    return rel


def encode_document(doc: Document) -> Any:
    import bioc

    bdoc = bioc.BioCDocument()
    bdoc.id = doc.id
    bdoc.infons.update(doc.metadata.get(INFONS, {}))
    layout = _layout(doc)
    for offset, length, infons in layout:
        passage = bioc.BioCPassage.of_text(doc.text[offset:offset + length], offset)
        passage.infons.update(infons)
        bdoc.add_passage(passage)
    for span in doc.spans:
        # The last passage starting at or before the span; spans in padding go there too.
        index = max((i for i, (o, _, _) in enumerate(layout) if o <= span.start), default=0)
        bdoc.passages[index].add_annotation(_encode_span(bioc, span))
    for relation in doc.relations:
        bdoc.add_relation(_encode_relation(bioc, relation))
    return bdoc


def write(documents: list[Document], path: Path) -> None:
    import bioc

    collection = bioc.BioCCollection()
    collection.source, collection.date, collection.key = "medner", "", ""
    for doc in documents:
        collection.add_document(encode_document(doc))
    with atomic_write(path) as handle:
        bioc.biocxml.dump(collection, handle)
