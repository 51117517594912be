"""Where concept names come from: annotated corpora, NLM's MeSH XML, and plain TSV files.

Each reader yields ``ConceptName`` records; ``medner.linking.index.build_index`` gathers them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from medner.document import Document
from medner.errors import MednerError

NO_CONCEPT = frozenset({"", "-1"})
"""ID values that mean "no concept" (PubTator writes -1)."""

MESH_TREE_LABELS: Mapping[str, str] = {"C": "Disease", "F03": "Disease", "D": "Chemical"}
"""MeSH tree-number prefixes -> entity label (C diseases, F03 mental disorders, D chemicals
and drugs): the BC5CDR and NCBI-disease types. The longest matching prefix wins."""

MESH_SCR_LABELS: Mapping[str, str] = {"1": "Chemical", "3": "Disease"}
"""MeSH supplementary-record classes -> label (1 chemical, 3 rare disease)."""


@dataclass(frozen=True)
class ConceptName:
    concepts: tuple[str, ...]
    """The concept ID, or several for a composite mention ("ovarian and breast cancer")."""
    name: str
    label: str | None
    preferred: bool = False
    """The vocabulary's preferred name for the concept (MeSH heading, TSV name column)."""
    tree_numbers: tuple[str, ...] = ()
    """The concept's places in the vocabulary's hierarchy (MeSH tree numbers, "C10.228"),
    given on its preferred name: what tells a broader concept from a narrower one."""


def names_from_corpus(documents: Iterable[Document]) -> Iterator[ConceptName]:
    """Every gold mention that carries concept IDs; mentions without one are skipped."""
    for doc in documents:
        for span in doc.spans:
            ids = tuple(i for i in span.ids if i not in NO_CONCEPT)
            if ids:
                yield ConceptName(ids, span.text, span.label)


def mesh_label(tree_numbers: Sequence[str], labels: Mapping[str, str]) -> str | None:
    best = None
    for number in tree_numbers:
        for prefix, label in labels.items():
            if number.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, label)
    return best[1] if best else None


def read_mesh_xml(path: str | Path, *, tree_labels: Mapping[str, str] = MESH_TREE_LABELS,
                  scr_labels: Mapping[str, str] = MESH_SCR_LABELS) -> Iterator[ConceptName]:
    """Names of the records in an NLM MeSH file: ``desc20XX.xml`` (DescriptorRecordSet) or
    ``supp20XX.xml`` (SupplementalRecordSet). Records whose tree numbers (descriptors) or
    class (supplementary records) map to no label are skipped. Streams: the full MeSH files
    are hundreds of MB."""
    path = Path(path)
    records = {"DescriptorRecordSet": "DescriptorRecord",
               "SupplementalRecordSet": "SupplementalRecord"}
    record_tag = None
    try:
        for event, element in ET.iterparse(path, events=("start", "end")):
            if record_tag is None:
                record_tag = records.get(element.tag)
                if record_tag is None:
                    raise MednerError(f"{path}: not a MeSH XML file (its root element is "
                                      f"<{element.tag}>, expected <DescriptorRecordSet> or "
                                      "<SupplementalRecordSet>)")
            if event == "end" and element.tag == record_tag:
                yield from _mesh_record(element, path, tree_labels, scr_labels)
                element.clear()
    except ET.ParseError as exc:
        line, column = exc.position
        raise MednerError(f"{path}, line {line}, column {column}: not well-formed XML "
                          f"({exc.msg if hasattr(exc, 'msg') else exc})") from None
    except FileNotFoundError:
        raise MednerError(f"MeSH file {path} does not exist") from None


def _mesh_record(record: ET.Element, path: Path, tree_labels: Mapping[str, str],
                 scr_labels: Mapping[str, str]) -> Iterator[ConceptName]:
    descriptor = record.tag == "DescriptorRecord"
    ui = record.findtext("DescriptorUI" if descriptor else "SupplementalRecordUI", "").strip()
    heading = record.findtext("DescriptorName/String" if descriptor
                              else "SupplementalRecordName/String", "").strip()
    if not ui or not heading:
        raise MednerError(f"{path}: a <{record.tag}> without its UI or name")
    trees = tuple(t.text.strip() for t in record.iterfind("TreeNumberList/TreeNumber")
                  if t.text and t.text.strip())
    label = mesh_label(trees, tree_labels) if descriptor else scr_labels.get(
        record.get("SCRClass", ""))
    if label is None:
        return
    yield ConceptName((ui,), heading, label, preferred=True, tree_numbers=trees)
    for term in record.iterfind("ConceptList/Concept/TermList/Term/String"):
        if term.text and term.text.strip() != heading:
            yield ConceptName((ui,), term.text.strip(), label)


def read_tsv(path: str | Path) -> Iterator[ConceptName]:
    """A vocabulary as TSV: ``id``, ``name``, ``synonyms`` (``|``-separated, may be empty),
    an optional ``label`` and optional ``tree_numbers`` (``|``-separated hierarchy positions,
    MeSH style: "C10.228" is under "C10"). A first line starting ``id<TAB>`` is a header."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MednerError(f"cannot read vocabulary {path}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and line.lower().startswith("id\t")):
            continue
        columns = line.split("\t")
        if len(columns) < 3 or not columns[0].strip() or not columns[1].strip():
            raise MednerError(f"{path}, line {number}: expected id, name and synonyms "
                              f"separated by tabs (synonyms may be empty), got "
                              f"{len(columns)} column(s): {line[:80]!r}")
        concept, name = columns[0].strip(), columns[1].strip()
        label = columns[3].strip() or None if len(columns) > 3 else None
        trees = tuple(t.strip() for t in columns[4].split("|") if t.strip()) \
            if len(columns) > 4 else ()
        yield ConceptName((concept,), name, label, preferred=True, tree_numbers=trees)
        for synonym in columns[2].split("|"):
            if synonym.strip():
                yield ConceptName((concept,), synonym.strip(), label)


@dataclass(frozen=True)
class Source:
    kind: str
    """``corpus``, ``mesh`` or ``tsv``."""
    names: list[ConceptName]
    documents: list[Document]
    """A corpus' documents (the index keeps their fingerprints for leak checks)."""


def read_source(path: str | Path) -> Source:
    """Names from one file, by its kind: ``.xml`` whose root is a MeSH record set, ``.tsv``,
    else an annotated corpus in any format medner reads."""
    from medner.io import read_corpus

    path = Path(path)
    if path.suffix.lower() == ".tsv":
        return Source("tsv", list(read_tsv(path)), [])
    if path.suffix.lower() == ".xml" and _is_mesh(path):
        return Source("mesh", list(read_mesh_xml(path)), [])
    documents = read_corpus(path).documents
    names = list(names_from_corpus(documents))
    if not names:
        raise MednerError(f"{path}: no mention carries a concept ID; it cannot teach names "
                          "to concepts")
    return Source("corpus", names, documents)


def _is_mesh(path: Path) -> bool:
    try:
        for _, element in ET.iterparse(path, events=("start",)):
            return element.tag in ("DescriptorRecordSet", "SupplementalRecordSet")
    except ET.ParseError:
        return False
    return False


__all__ = ["MESH_SCR_LABELS", "MESH_TREE_LABELS", "NO_CONCEPT", "ConceptName",
           "Source", "mesh_label", "names_from_corpus", "read_mesh_xml", "read_source", "read_tsv"]
