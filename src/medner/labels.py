"""Label schemas: the labels a model predicts and how corpus labels map onto them."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from medner.document import Document
from medner.errors import ConfigError


@dataclass(frozen=True)
class LabelSchema:
    name: str
    labels: tuple[str, ...]
    mapping: Mapping[str, str] = field(default_factory=dict)
    """Source label -> schema label. Labels already in ``labels`` map to themselves."""

    def target(self, source_label: str) -> str | None:
        if source_label in self.mapping:
            return self.mapping[source_label]
        return source_label if source_label in self.labels else None

    def to_dict(self) -> dict[str, object]:
        """As stored in a model folder's ``medner.json``."""
        return {"name": self.name, "labels": list(self.labels), "mapping": dict(self.mapping)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LabelSchema:
        return cls(str(data["name"]), tuple(data["labels"]), dict(data.get("mapping") or {}))


SCHEMAS: dict[str, LabelSchema] = {
    "bc5cdr": LabelSchema("bc5cdr", ("Chemical", "Disease")),
    "ncbi-disease": LabelSchema(
        "ncbi-disease",
        ("Disease",),
        {
            "SpecificDisease": "Disease",
            "DiseaseClass": "Disease",
            "Modifier": "Disease",
            "CompositeMention": "Disease",
        },
    ),
    "clinical4": LabelSchema(
        "clinical4",
        ("DISEASE", "SYMPTOM", "DRUG", "BODY_PART"),
        {  # MACCROBAT's brat types
            "Disease_disorder": "DISEASE",
            "Sign_symptom": "SYMPTOM",
            "Medication": "DRUG",
            "Biological_structure": "BODY_PART",
        },
    ),
}


def canonical_label(label: str | None) -> str | None:
    """The label a built-in schema maps ``label`` onto ("SpecificDisease" -> "Disease"), else
    ``label`` itself."""
    for schema in SCHEMAS.values():
        if label in schema.mapping:
            return schema.mapping[label]
    return label


def load_schema_file(path: str | Path) -> LabelSchema:
    """A user schema: TOML or JSON with ``name``, ``labels`` and an optional ``map`` table."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
        data = json.loads(raw) if p.suffix == ".json" else tomllib.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read label schema: {exc}") from None
    labels = data.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ConfigError(f"{p}: field 'labels' must be a non-empty list of strings")
    mapping = data.get("map", {})
    if not isinstance(mapping, dict):
        raise ConfigError(f"{p}: field 'map' must be a table of source label = schema label")
    unknown = sorted({v for v in mapping.values() if v not in labels})
    if unknown:
        raise ConfigError(f"{p}: field 'map' maps onto labels not in 'labels': {unknown}")
    return LabelSchema(str(data.get("name", p.stem)), tuple(labels), dict(mapping))


def get_schema(name_or_path: str) -> LabelSchema:
    if name_or_path in SCHEMAS:
        return SCHEMAS[name_or_path]
    if Path(name_or_path).is_file():
        return load_schema_file(name_or_path)
    raise ConfigError(
        f"unknown label schema {name_or_path!r}: use one of {', '.join(SCHEMAS)} "
        "or the path of a TOML/JSON schema file"
    )


def infer_schema(documents: Iterable[Document]) -> LabelSchema:
    """A schema of exactly the labels found in the documents (training without --labels)."""
    labels = sorted({s.label for d in documents for s in d.spans})
    return LabelSchema("inferred", tuple(labels))


def apply_schema(
    documents: Iterable[Document], schema: LabelSchema
) -> tuple[list[Document], Counter[str]]:
    """Relabel spans onto the schema; spans of other labels are dropped and counted by label.

    Span relations whose head or tail was dropped are dropped too (counted as ``relation:<label>``).
    """
    dropped: Counter[str] = Counter()
    out = []
    for doc in documents:
        spans = []
        for span in doc.spans:
            target = schema.target(span.label)
            if target is None:
                dropped[span.label] += 1
            else:
                spans.append(replace(span, label=target))
        kept_ids = {s.id for s in spans if s.id is not None}
        relations = []
        for rel in doc.relations:
            if rel.args == "span" and not {rel.head, rel.tail} <= kept_ids:
                dropped[f"relation:{rel.label}"] += 1
            else:
                relations.append(rel)
        out.append(replace(doc, spans=tuple(spans), relations=tuple(relations)))
    return out, dropped
