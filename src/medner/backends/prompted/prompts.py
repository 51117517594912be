"""Prompt templates, looked up by name: build the prompt and target from a Document, parse back.

A template is a tuple of *tasks*; each task is one prompt per document with its own
completion format:

``entities-json``   every entity of the schema as a JSON list, one ``{"text", "label"}``
                    object per line (so a cut-off or broken answer loses single lines only)
``entities-lines``  every entity as a ``Label: text`` line (``None`` if there is none): the
                    same content as ``entities-json`` in about half the tokens, so training
                    and generation are faster
``label-lists``     one prompt per label, the tutorial's ``- item`` lists; Disease and
                    Chemical use the tutorial's exact wording, other labels the same shape
``tutorial``        the Cohere/BC5CDR tutorial as-is: diseases, chemicals and its
                    ``- Chemical X influences disease Y`` lines (``medner.io.instruct``)
``relations``       chemical-induced disease (CID) pairs as JSON ``{"chemical", "disease"}``
``entities-json+relations``  both, two prompts per document

Each task also names its *copy regions* (where the answer copies text from the input),
which constrained decoding restricts to substrings of the input, and a relation task its
``RelationType``: the relation label and the entity labels of its two sides, which grounding
gives the pairs of its answers.

The local LLM backend (``medner.backends.llm``) trains on and generates from these prompts, the
hosted backend (``medner.backends.hosted``) tunes and prompts a provider's model with them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from medner.backends.prompted.parse import (
    NO_ENTITIES,
    Parsed,
    parse_json_lines,
    parse_labelled_lines,
    parse_list,
)
from medner.document import Document
from medner.errors import ConfigError, one_of
from medner.io.instruct import (
    INSTRUCTIONS,
    build_completion,
    build_prompt,
    influence_lines,
    relation_pairs,
)
from medner.labels import LabelSchema

CHEMICAL, DISEASE = "Chemical", "Disease"
_TUTORIAL_TASKS = {DISEASE: "diseases", CHEMICAL: "chemicals"}
_INFLUENCE_PREFIX = "Chemical "
_INFLUENCE_SEP = " influences disease "


@dataclass(frozen=True)
class CopyRegion:
    """Output text after a match of ``opener`` (a regex) up to ``terminator`` is copied input."""

    opener: str
    terminator: str


@dataclass(frozen=True)
class RelationType:
    """The relation a task asks for: its label and the entity labels of its head and tail."""

    label: str
    head: str
    tail: str


CID = RelationType("CID", CHEMICAL, DISEASE)
"""Chemical-induced disease, BC5CDR's relation: what ``relations`` and ``influences`` ask."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: Literal["entities", "relations"]
    label: str | None = None
    """For per-label list tasks: the one schema label it extracts."""
    relation: RelationType | None = None
    """For relation tasks: the relation its pairs are (head, tail) of."""

    # ------------------------------------------------------------------ prompt side
    def user_message(self, text: str, schema: LabelSchema) -> str:
        if self.name == "entities-json":
            labels = ", ".join(schema.labels)
            return ("Extract every entity of these types from the text: " + labels + ".\n"
                    'Answer with a JSON list, one {"text": ..., "label": ...} object per line, '
                    "copying each mention exactly as written (each distinct mention once). "
                    "Answer [] if there is none.\n\nText:\n" + text)
        if self.name == "entities-lines":
            labels = ", ".join(schema.labels)
            return ("Extract every entity of these types from the text: " + labels + ".\n"
                    "Answer one entity per line as label: text, copying each mention exactly "
                    "as written (each distinct mention once). Answer " + NO_ENTITIES +
                    " if there is none.\n\nText:\n" + text)
        if self.name == "relations":
            return ("List the chemical-induced disease (CID) relations in the text: pairs of a "
                    "chemical and a disease it causes.\n"
                    'Answer with a JSON list, one {"chemical": ..., "disease": ...} object per '
                    "line, copying the names exactly as written. Answer [] if there is none."
                    "\n\nText:\n" + text)
        if self.name in INSTRUCTIONS:  # the tutorial's own wording, byte for byte
            return build_prompt(text, self.name)
        return (f"The following article contains technical terms. Create a list only of the "
                f"{self.label} mentions.\n\n{text}\n\nList of extracted {self.label}:\n")

    def completion(self, doc: Document) -> str:
        if self.name == "entities-json":
            rows = [json.dumps({"text": t, "label": lab}, ensure_ascii=False)
                    for t, lab in entity_items(doc)]
            return "[\n" + ",\n".join(rows) + "\n]" if rows else "[]"
        if self.name == "entities-lines":
            rows = [f"{lab}: {t}" for t, lab in entity_items(doc)]
            return "\n".join(rows) if rows else NO_ENTITIES
        if self.name == "relations":
            assert self.relation is not None
            rows = [json.dumps({"chemical": h, "disease": t}, ensure_ascii=False)
                    for h, t in relation_pairs(doc, self.relation.label)]
            return "[\n" + ",\n".join(rows) + "\n]" if rows else "[]"
        if self.name == "influences":
            return build_completion(influence_lines(doc))
        return build_completion([t for t, lab in entity_items(doc) if lab == self.label])

    # ------------------------------------------------------------------ answer side
    def parse(self, output: str, schema: LabelSchema) -> Parsed:
        if self.name == "entities-json":
            return parse_json_lines(output, ("text", "label"), labels=schema.labels)
        if self.name == "entities-lines":
            return parse_labelled_lines(output, schema.labels)
        if self.name == "relations":
            return parse_json_lines(output, ("chemical", "disease"))
        if self.name == "influences":
            return parse_list(output, pair_separator=(_INFLUENCE_PREFIX, _INFLUENCE_SEP))
        assert self.label is not None
        return parse_list(output, label=self.label)

    @property
    def copy_regions(self) -> tuple[CopyRegion, ...]:
        if self.name == "entities-json":
            return (CopyRegion(r'"text"\s*:\s*"', '"'),)
        if self.name == "entities-lines":  # after the first colon of a line
            return (CopyRegion(r"(?:^|\n)[^\n:]*:", "\n"),)
        if self.name == "relations":
            return (CopyRegion(r'"chemical"\s*:\s*"', '"'), CopyRegion(r'"disease"\s*:\s*"', '"'))
        if self.name == "influences":
            return (CopyRegion(r"(?:^|\n)-\s*Chemical", _INFLUENCE_SEP.rstrip()),
                    CopyRegion(_INFLUENCE_SEP.strip(), "\n"))
        return (CopyRegion(r"(?:^|\n)-", "\n"),)


@dataclass(frozen=True)
class Template:
    name: str
    tasks: tuple[str, ...]
    """Task names; ``"label-lists"`` expands to one list task per schema label."""
    description: str

    def build_tasks(self, schema: LabelSchema) -> list[Task]:
        """The concrete tasks for ``schema``; errors say which labels a template needs."""
        tasks: list[Task] = []
        for name in self.tasks:
            if name == "label-lists":
                tasks += [Task(_TUTORIAL_TASKS.get(lab, lab), "entities", lab)
                          for lab in schema.labels]
            elif name in ("diseases", "chemicals"):
                label = DISEASE if name == "diseases" else CHEMICAL
                _need(self.name, schema, (label,))
                tasks.append(Task(name, "entities", label))
            elif name in ("influences", "relations"):
                _need(self.name, schema, (CID.head, CID.tail))
                tasks.append(Task(name, "relations", relation=CID))
            else:
                tasks.append(Task(name, "entities"))
        return tasks


def _need(template: str, schema: LabelSchema, labels: Sequence[str]) -> None:
    missing = [lab for lab in labels if lab not in schema.labels]
    if missing:
        raise ConfigError(f"template {template!r} needs the labels {list(labels)} in the label "
                          f"schema, but {schema.name!r} has {list(schema.labels)}; use "
                          "--labels bc5cdr or --template entities-json / label-lists")


TEMPLATES: dict[str, Template] = {
    "entities-json": Template("entities-json", ("entities-json",),
                              "All entities as a JSON list of {text, label}, one per line."),
    "entities-lines": Template("entities-lines", ("entities-lines",),
                               "All entities as 'Label: text' lines (half the tokens of JSON)."),
    "label-lists": Template("label-lists", ("label-lists",),
                            "One '- item' list prompt per label (tutorial wording for "
                            "Disease/Chemical)."),
    "tutorial": Template("tutorial", ("diseases", "chemicals", "influences"),
                         "The Cohere/BC5CDR tutorial: disease list, chemical list and "
                         "'Chemical X influences disease Y' lines."),
    "relations": Template("relations", ("relations",),
                          "Chemical-induced disease pairs as JSON {chemical, disease}."),
    "entities-json+relations": Template("entities-json+relations",
                                        ("entities-json", "relations"),
                                        "entities-json and relations: two prompts per document."),
}


def get_template(name: str) -> Template:
    return one_of(TEMPLATES, name, "prompt template")


def document_tasks(doc: Document, tasks: Sequence[Task]) -> list[Task]:
    """The tasks a training document has targets for.

    A document read from the tutorial JSONL lists its tasks in ``metadata["instruct_tasks"]``;
    an abstract seen only under "influences" has incomplete entity lists, so it must not
    teach the model to leave entities out.
    """
    seen = doc.metadata.get("instruct_tasks")
    if not seen:
        return list(tasks)
    entity_tasks = {"diseases", "chemicals"}
    out = []
    for task in tasks:
        if task.name in ("influences", "relations"):
            ok = "influences" in seen
        elif task.name in ("entities-json", "entities-lines"):
            ok = entity_tasks <= set(seen)
        else:
            ok = task.name in seen
        if ok:
            out.append(task)
    return out


# ---------------------------------------------------------------------------- targets


def entity_items(doc: Document) -> list[tuple[str, str]]:
    """Distinct (surface text, label) pairs in order of first appearance."""
    ordered = sorted(doc.spans, key=lambda s: (s.start, s.end, s.label))
    return list(dict.fromkeys((doc.text[s.start:s.end], s.label) for s in ordered))


__all__ = ["CID", "TEMPLATES", "CopyRegion", "RelationType", "Task", "Template",
           "document_tasks", "entity_items", "get_template"]
