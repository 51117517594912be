"""The data model every reader, writer, backend and scorer goes through.

Offsets are 0-based, end-exclusive character offsets into the original, untouched
``Document.text``. A discontinuous mention keeps its pieces in ``fragments``; its
``start``/``end`` then cover the first to the last piece.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from medner.errors import MednerError

RelationArgs = Literal["concept", "span"]

ASSERTION = "assertion"
"""The span attribute that says whether a finding is asserted: ``present`` (the default
when a span has none), ``absent`` (negated: "denies chest pain") or ``possible``
("suspected pneumonia"); other values are kept as given."""
PRESENT, ABSENT, POSSIBLE = "present", "absent", "possible"


def _set_fields(**values: Any) -> dict[str, Any]:
    """The optional fields that are set: JSON leaves out what is None or empty, so that
    files stay small and a field added later does not change how older records are written."""
    return {name: value for name, value in values.items()
            if value is not None and not (isinstance(value, list | dict) and not value)}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    text: str
    ids: tuple[str, ...] = ()
    """Normalised concept IDs (e.g. MeSH ``D009270``); several for a composite mention."""
    fragments: tuple[tuple[int, int], ...] = ()
    """(start, end) pieces of a discontinuous mention; empty for a contiguous one."""
    score: float | None = None
    """Model confidence in [0, 1] for predicted spans; ``None`` for gold spans."""
    id: str | None = None
    """Identifier inside its source file (brat ``T12``), used by span relations."""
    extra: tuple[str, ...] = ()
    """Format-specific trailing columns kept for lossless round trips (PubTator composites)."""
    link_score: float | None = None
    """How sure concept linking was of ``ids`` (1.0 exact name; a cosine for an embedding
    match); ``None`` for IDs it did not choose (gold, or none)."""
    attributes: tuple[tuple[str, str], ...] = ()
    """(name, value) pairs, sorted by name: ``("assertion", "absent")``, or a corpus' own
    (MACCROBAT's ``("TREND", "INC")``). A tuple, not a dict, so that spans stay hashable."""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(
                f"span offsets must satisfy 0 <= start < end, got {self.start}-{self.end}"
            )
        attributes = tuple(sorted((str(k), str(v)) for k, v in dict(self.attributes).items()))
        object.__setattr__(self, "attributes", attributes)

    def attribute(self, name: str, default: str | None = None) -> str | None:
        return dict(self.attributes).get(name, default)

    @property
    def assertion(self) -> str | None:
        """``present``, ``absent``, ``possible`` (or a corpus' own value); ``None`` when no
        assertion was annotated or predicted."""
        return self.attribute(ASSERTION)

    def with_attribute(self, name: str, value: str) -> Span:
        return replace(self, attributes=(*(a for a in self.attributes if a[0] != name),
                                         (name, value)))

    @property
    def pieces(self) -> tuple[tuple[int, int], ...]:
        """The character ranges the mention covers: its fragments, or (start, end)."""
        return self.fragments or ((self.start, self.end),)

    def key(self) -> tuple[int, int, str]:
        return (self.start, self.end, self.label)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label, "text": self.text,
                **_set_fields(ids=list(self.ids), fragments=[list(f) for f in self.fragments],
                              score=self.score, id=self.id, extra=list(self.extra),
                              link_score=self.link_score, attributes=dict(self.attributes))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            label=str(data["label"]),
            text=str(data["text"]),
            ids=tuple(data.get("ids", ())),
            fragments=tuple((int(a), int(b)) for a, b in data.get("fragments", ())),
            score=data.get("score"),
            id=data.get("id"),
            extra=tuple(data.get("extra", ())),
            link_score=data.get("link_score"),
            attributes=tuple(_attributes(data.get("attributes") or {}).items()),
        )


def _attributes(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"span 'attributes' must map names to text values, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class Relation:
    """A typed, directed relation.

    With ``args == "concept"`` head and tail are concept IDs (BC5CDR CID: chemical MeSH,
    disease MeSH), document-level. With ``args == "span"`` they are ``Span.id`` values.
    """

    label: str
    head: str
    tail: str
    args: RelationArgs = "concept"
    id: str | None = None
    """Identifier inside its source file (brat ``R3``)."""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "head": self.head, "tail": self.tail, "args": self.args,
                **_set_fields(id=self.id)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Relation:
        args = data.get("args", "concept")
        if args not in ("concept", "span"):
            raise ValueError(f"relation 'args' must be 'concept' or 'span', got {args!r}")
        return cls(label=str(data["label"]), head=str(data["head"]), tail=str(data["tail"]),
                   args=args, id=data.get("id"))


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    spans: tuple[Span, ...] = ()
    relations: tuple[Relation, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Format details for lossless round trips (e.g. PubTator title length), provenance."""

    def with_spans(self, spans: Iterable[Span]) -> Document:
        return replace(self, spans=tuple(sorted(spans, key=lambda s: (s.start, s.end, s.label))))

    def span_by_id(self) -> dict[str, Span]:
        return {s.id: s for s in self.spans if s.id is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "spans": [s.to_dict() for s in self.spans],
                **_set_fields(relations=[r.to_dict() for r in self.relations],
                              metadata=self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Document:
        spans = tuple(Span.from_dict(s) for s in data.get("spans", ()))
        relations = tuple(Relation.from_dict(r) for r in data.get("relations", ()))
        return cls(id=str(data["id"]), text=str(data["text"]), spans=spans, relations=relations,
                   metadata=dict(data.get("metadata", {})))


def documents_from_texts(texts: str | Iterable[str], ids: Sequence[str] | None = None
                         ) -> list[Document]:
    """One Document per text (a single string is one text), ids "1", "2", ... unless given."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if ids is not None and len(ids) != len(texts):
        raise MednerError(f"extract: {len(ids)} ids for {len(texts)} texts")
    doc_ids = list(ids) if ids is not None else [str(i + 1) for i in range(len(texts))]
    return [Document(i, t) for i, t in zip(doc_ids, texts, strict=True)]


def normalize_text(text: str) -> str:
    """Case-folded, NFKC, whitespace-collapsed text: the identity used to find shared documents."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_fingerprint(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def corpus_fingerprint(documents: Iterable[Document]) -> str:
    """A short hash of ids, texts and annotations, recorded with trained models."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.id.encode())
        digest.update(b"\0")
        digest.update(doc.text.encode())
        for span in doc.spans:
            digest.update(f"{span.start}:{span.end}:{span.label};".encode())
        digest.update(b"\1")
    return digest.hexdigest()[:16]
