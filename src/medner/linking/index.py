"""A concept index: names -> concept IDs, with string keys and name embeddings, saved as a
folder that ``medner.linking.Linker`` reads.

Folder: ``medner.json`` (what built it, from which sources, with which embedding model),
``names.jsonl`` (one row per distinct name, its concept IDs, label and count),
``concepts.json`` (ID -> preferred name and label), ``embeddings.npy`` (one unit-length row
per name) and ``documents.json`` (fingerprints of the corpus documents whose annotations it
holds, so that scoring on those documents can be refused, as ``check-leak`` does for text).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medner.core.folder import MEDNER_JSON, atomic_folder, folder_header, read_json, write_json
from medner.document import Document, text_fingerprint
from medner.errors import MednerError
from medner.labels import canonical_label
from medner.linking.names import KEYS, exact_key
from medner.linking.sources import ConceptName

INDEX_KIND = "concept-index"


@dataclass(frozen=True)
class NameEntry:
    concepts: tuple[str, ...]
    name: str
    label: str | None
    count: int
    """How often the name was seen for these concepts (corpus mentions; 1 per vocabulary)."""
    preferred: bool


@dataclass
class ConceptIndex:
    entries: list[NameEntry]
    concepts: dict[str, dict[str, Any]]
    """ID -> ``{"name": preferred name, "label": label}``, and ``"tree_numbers"`` where the
    vocabulary places the concept in a hierarchy (MeSH)."""
    embeddings: np.ndarray
    meta: dict[str, Any]
    documents: dict[str, str] = field(default_factory=dict)
    """Fingerprint of each annotated corpus document -> its id."""

    def __post_init__(self) -> None:
        # names and spans meet on the built-in schemas' labels: an NCBI "SpecificDisease"
        # mention and a MeSH "Disease" heading are both diseases
        entry_labels = [canonical_label(e.label) for e in self.entries]
        self.labels = {label for label in entry_labels if label is not None}
        # matcher -> (key, label) -> concepts -> weight. A name without a label (a vocabulary
        # that gives none) is a candidate for every label; label None looks in all names.
        self._by_key: dict[str, dict[tuple[str, str | None], Counter]] = {}
        for matcher, key_of in KEYS:
            table: dict[tuple[str, str | None], Counter] = defaultdict(Counter)
            for entry, entry_label in zip(self.entries, entry_labels, strict=True):
                key = key_of(entry.name)
                if key:
                    weight = entry.count + (0.5 if entry.preferred else 0.0)
                    labels = {entry_label} if entry_label is not None else self.labels
                    for label in (*labels, None):
                        table[(key, label)][entry.concepts] += weight
            self._by_key[matcher] = dict(table)
        self._vector_rows: dict[str | None, np.ndarray] = {None: np.arange(len(self.entries))}
        for label in self.labels:
            self._vector_rows[label] = np.array(
                [i for i, e in enumerate(entry_labels) if e in (label, None)],
                dtype=np.int64)
        self._searchers: dict[str | None, Any] = {}

    def _label(self, label: str | None) -> str | None:
        """The index label to search for a span label: its built-in schema label
        (``medner.labels.canonical_label``), or every label when the index does not know it."""
        label = canonical_label(label)
        return label if label in self.labels else None

    def lookup(self, name: str, label: str | None) -> tuple[tuple[str, ...], str] | None:
        """(concept IDs, matcher) from the strictest string key that knows ``name``."""
        label = self._label(label)
        for matcher, key_of in KEYS:
            counts = self._by_key[matcher].get((key_of(name), label))
            if counts:
                best = max(counts.items(), key=lambda item: (item[1], item[0]))
                return best[0], matcher
        return None

    def nearest(self, vectors: np.ndarray, labels: Sequence[str | None], k: int = 1
                ) -> list[list[tuple[tuple[str, ...], float, str]]]:
        """Per vector and label, the ``k`` nearest names as (concepts, cosine similarity,
        name), nearest first."""
        found: list[list[tuple[tuple[str, ...], float, str]]] = [[] for _ in vectors]
        wanted: dict[str | None, list[int]] = defaultdict(list)
        for position, label in enumerate(labels):
            wanted[self._label(label)].append(position)
        for label, positions in wanted.items():
            rows = self._vector_rows[label]
            if not len(rows):
                continue
            scores, hits = self._searcher(label).search(vectors[positions], k)
            for position, row_scores, row_hits in zip(positions, scores, hits, strict=True):
                for score, hit in zip(row_scores, row_hits, strict=True):
                    if hit >= 0:
                        entry = self.entries[int(rows[hit])]
                        found[position].append((entry.concepts, float(score), entry.name))
        return found

    def _searcher(self, label: str | None):
        """An exact inner-product faiss index over the label's name vectors (built once)."""
        if label not in self._searchers:
            import faiss

            searcher = faiss.IndexFlatIP(self.embeddings.shape[1])
            searcher.add(np.ascontiguousarray(self.embeddings[self._vector_rows[label]]))
            self._searchers[label] = searcher
        return self._searchers[label]

    def broader(self, concept: str, other: str) -> bool:
        """Whether ``concept`` stands above ``other`` in the vocabulary's hierarchy (a tree
        number of ``other`` extends one of ``concept``'s: "C10.228" is under "C10"). False
        where either has no tree numbers."""
        above = self.concepts.get(concept, {}).get("tree_numbers") or ()
        below = self.concepts.get(other, {}).get("tree_numbers") or ()
        return any(b.startswith(a + ".") for a in above for b in below)

    def name_of(self, concept: str) -> str | None:
        info = self.concepts.get(concept)
        return None if info is None else info["name"]

    def annotated_documents(self, documents: Iterable[Document]) -> list[str]:
        """Ids of ``documents`` whose own annotations this index was built from."""
        return [d.id for d in documents if text_fingerprint(d.text) in self.documents]

    def save(self, out: str | Path) -> Path:
        def write(folder: Path) -> None:
            write_json(folder / MEDNER_JSON, {**folder_header(INDEX_KIND, out), **self.meta})
            with (folder / "names.jsonl").open("w", encoding="utf-8") as handle:
                for e in self.entries:
                    handle.write(json.dumps({"concepts": list(e.concepts), "name": e.name,
                                             "label": e.label, "count": e.count,
                                             "preferred": e.preferred},
                                            ensure_ascii=False) + "\n")
            write_json(folder / "concepts.json", self.concepts)
            write_json(folder / "documents.json", self.documents)
            np.save(folder / "embeddings.npy", self.embeddings)

        return atomic_folder(out, write)

    @classmethod
    def load(cls, folder: str | Path) -> ConceptIndex:
        folder = Path(folder)
        meta = read_json(folder / MEDNER_JSON, f"missing; {folder} is not a concept index")
        if not isinstance(meta, dict) or meta.get("backend") != INDEX_KIND:
            raise MednerError(f"{folder}: not a concept index (build one with `medner kb "
                              "build`)")
        entries = []
        path = folder / "names.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise MednerError(f"{path}: unreadable ({exc})") from None
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
                entries.append(NameEntry(tuple(row["concepts"]), row["name"], row["label"],
                                         int(row["count"]), bool(row["preferred"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise MednerError(f"{path}, line {number}: not a name record ({exc})") from None
        embeddings = np.load(folder / "embeddings.npy")
        if len(embeddings) != len(entries):
            raise MednerError(f"{folder}: {len(embeddings)} embeddings for {len(entries)} "
                              "names; rebuild the index")
        return cls(entries, read_json(folder / "concepts.json", "missing"), embeddings,
                   {k: v for k, v in meta.items() if k not in folder_header(INDEX_KIND, folder)},
                   read_json(folder / "documents.json", "missing"))


def build_index(names: Iterable[ConceptName], embed, *, sources: Sequence[dict[str, Any]],
                documents: Iterable[Document] = ()) -> ConceptIndex:
    """Gather names (one entry per distinct name, concepts and label), choose each concept's
    preferred name (the vocabulary's, else its most frequent mention) and embed every name
    with ``embed`` (a ``NameEmbedder``)."""
    counts: Counter[tuple[tuple[str, ...], str, str | None]] = Counter()
    spelling: dict[tuple[tuple[str, ...], str, str | None], str] = {}
    preferred: set[tuple[tuple[str, ...], str, str | None]] = set()
    trees: dict[str, set[str]] = defaultdict(set)
    for record in names:
        key = (record.concepts, exact_key(record.name), record.label)
        counts[key] += 1
        spelling.setdefault(key, record.name)
        if record.preferred:
            preferred.add(key)
        if record.tree_numbers:
            for concept in record.concepts:
                trees[concept].update(record.tree_numbers)
    if not counts:
        raise MednerError("no concept names found in the sources: a corpus needs mentions with "
                          "concept IDs, a vocabulary at least one row")
    entries = [NameEntry(key[0], spelling[key], key[2], n, key in preferred)
               for key, n in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1]))]
    concepts: dict[str, dict[str, Any]] = {}
    best: dict[str, tuple[bool, int]] = {}
    for entry in entries:
        if len(entry.concepts) != 1:
            continue
        (concept,) = entry.concepts
        rank = (entry.preferred, entry.count)
        if concept not in best or rank > best[concept]:
            best[concept] = rank
            concepts[concept] = {"name": entry.name, "label": entry.label}
    for concept, numbers in trees.items():
        if concept in concepts:
            concepts[concept]["tree_numbers"] = sorted(numbers)
    embeddings = embed([e.name for e in entries])
    meta = {"embedding_model": embed.base_model, "names": len(entries),
            "concepts": len(concepts), "sources": list(sources)}
    fingerprints = {text_fingerprint(d.text): d.id for d in documents}
    return ConceptIndex(entries, concepts, embeddings, meta, fingerprints)


__all__ = ["INDEX_KIND", "ConceptIndex", "NameEntry", "build_index"]
