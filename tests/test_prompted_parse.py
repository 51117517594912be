"""Answer parsers on canned inputs (broken JSON and bad lines are counted, never fatal),
grounding of strings to offsets, hallucination counting, relations and their scoring."""

from __future__ import annotations

import pytest

from medner.backends.prompted.answers import ground_document
from medner.backends.prompted.parse import parse_json_lines, parse_labelled_lines, parse_list
from medner.backends.prompted.prompts import CID
from medner.document import Document, Relation, Span
from medner.scoring import evaluate

LABELS = ("Chemical", "Disease")
KEYS = ("text", "label")


@pytest.mark.parametrize("answer, entities, bad, unknown", [
    ('[]', [], 0, 0),
    ('[\n{"text": "aspirin", "label": "Chemical"},\n{"text": "ulcer", "label": "Disease"}\n]',
     [("aspirin", "Chemical"), ("ulcer", "Disease")], 0, 0),
    # compact, valid JSON on one line
    ('[{"text": "aspirin", "label": "Chemical"}, {"text": "ulcer", "label": "Disease"}]',
     [("aspirin", "Chemical"), ("ulcer", "Disease")], 0, 0),
    # cut off by max_new_tokens: the complete lines survive
    ('[\n{"text": "aspirin", "label": "Chemical"},\n{"text": "ulc',
     [("aspirin", "Chemical")], 1, 0),
    # prose and a trailing comma before ]
    ('Here you go:\n[\n{"text": "aspirin", "label": "Chemical"},\n]',
     [("aspirin", "Chemical")], 1, 0),
    # a label outside the schema is counted apart
    ('[\n{"text": "aspirin", "label": "Drug"},\n{"text": "ulcer", "label": "Disease"}\n]',
     [("ulcer", "Disease")], 0, 1),
    # wrong keys, non-string values, empty text
    ('[\n{"name": "aspirin", "label": "Chemical"},\n{"text": 3, "label": "Chemical"},\n'
     '{"text": " ", "label": "Chemical"}\n]', [], 3, 0),
    # two objects on one line, one of them broken
    ('{"text": "a b", "label": "Chemical"}, {"text": "x", "label": Disease}',
     [("a b", "Chemical")], 1, 0),
    ('', [], 0, 0),
    ('not json at all', [], 1, 0),
])
def test_parse_json_lines(answer, entities, bad, unknown):
    parsed = parse_json_lines(answer, KEYS, labels=LABELS)
    assert parsed.entities == entities
    assert (parsed.bad_lines, parsed.unknown_labels) == (bad, unknown)


def test_parse_json_pairs():
    parsed = parse_json_lines('[\n{"chemical": "aspirin", "disease": "ulcer"},\n'
                              '{"chemical": "aspirin"}\n]', ("chemical", "disease"))
    assert parsed.pairs == [("aspirin", "ulcer")] and parsed.bad_lines == 1


@pytest.mark.parametrize("answer, items, bad", [
    ("- aspirin\n- ulcer", ["aspirin", "ulcer"], 0),
    ("- ", [], 0),                      # the tutorial's empty list
    ("-aspirin\n\n  - ulcer  ", ["aspirin", "ulcer"], 0),
    ("aspirin\n- ulcer\n* gout", ["ulcer"], 2),
])
def test_parse_list(answer, items, bad):
    parsed = parse_list(answer, label="Disease")
    assert parsed.entities == [(i, "Disease") for i in items] and parsed.bad_lines == bad


@pytest.mark.parametrize("answer, entities, bad, unknown", [
    ("Chemical: aspirin\nDisease: ulcer", [("aspirin", "Chemical"), ("ulcer", "Disease")], 0, 0),
    ("None", [], 0, 0),                                   # the empty answer
    ("", [], 0, 0),
    # a colon inside the mention survives; spaces around the parts do not matter
    ("  Chemical :  IL-2: receptor blocker \n", [("IL-2: receptor blocker", "Chemical")], 0, 0),
    # no colon, nothing after it, no label; a label outside the schema
    ("aspirin\nChemical:\n: ulcer\nDrug: aspirin\nDisease: gout",
     [("gout", "Disease")], 3, 1),
])
def test_parse_labelled_lines(answer, entities, bad, unknown):
    parsed = parse_labelled_lines(answer, LABELS)
    assert parsed.entities == entities
    assert (parsed.bad_lines, parsed.unknown_labels) == (bad, unknown)


@pytest.mark.parametrize("answer, pairs, bad", [
    ("- Chemical aspirin influences disease ulcer", [("aspirin", "ulcer")], 0),
    ("- Chemical 5 fluorouracil influences disease chest pain\n- aspirin causes ulcer",
     [("5 fluorouracil", "chest pain")], 1),
    ("- Chemical  influences disease ulcer", [], 1),
])
def test_parse_influences(answer, pairs, bad):
    parsed = parse_list(answer, pair_separator=("Chemical ", " influences disease "))
    assert parsed.pairs == pairs and parsed.bad_lines == bad


TEXT = ("Aspirin\u2009induced ulcer. Gastric ulcer with aspirin; ALSO acute liver "
        "injury\u00a0and liver injury.")


def test_grounding_every_occurrence_word_boundaries_and_unicode_spaces():
    doc = Document("d", TEXT)
    out, stats = ground_document(
        doc, [("aspirin", "Chemical"), ("Aspirin induced ulcer", "Disease"), ("ALS", "Disease"),
              ("acute liver injury", "Disease"), ("liver injury", "Disease"),
              ("heparin", "Chemical")])
    found = {(s.text, s.label) for s in out.spans}
    # case-sensitive first: "aspirin" matches the lower-case one only
    assert ("aspirin", "Chemical") in found and ("Aspirin", "Chemical") not in found
    assert ("Aspirin\u2009induced ulcer", "Disease") in found      # thin space in the text
    assert ("acute liver injury", "Disease") in found
    # the nested occurrence inside "acute liver injury" is dropped, the other one kept
    assert [s.text for s in out.spans if s.text == "liver injury"] == ["liver injury"]
    assert ("ALS", "Disease") not in found and ("ALSO", "Disease") not in found
    assert stats.hallucinations == 2          # "ALS" (only inside ALSO) and "heparin"
    for s in out.spans:
        assert TEXT[s.start:s.end] == s.text


def test_grounding_finds_every_occurrence():
    out, stats = ground_document(Document("d", "ulcer, ulcer and ulcers"),
                                 [("ulcer", "Disease")])
    assert [(s.start, s.end) for s in out.spans] == [(0, 5), (7, 12)]
    assert stats.hallucinations == 0


def test_relations_are_grounded_to_entities_in_the_same_document():
    text = "Aspirin caused an ulcer and a rash; heparin did not."
    out, stats = ground_document(
        Document("d", text), [("Aspirin", "Chemical"), ("ulcer", "Disease")],
        {CID: [("aspirin", "ulcer"),       # case differs from the entity: linked to it
               ("Aspirin", "rash"),        # rash not predicted as an entity: added
               ("ibuprofen", "ulcer")]})   # not in the text: dropped, counted
    by_id = out.span_by_id()
    pairs = {(by_id[r.head].text, by_id[r.tail].text) for r in out.relations}
    assert pairs == {("Aspirin", "ulcer"), ("Aspirin", "rash")}
    assert all(r.args == "span" and r.label == "CID" for r in out.relations)
    assert (stats.hallucinated_relations, stats.relation_entities_added) == (1, 1)


def test_generated_relations_score_against_bc5cdr_concept_relations():
    text = "Aspirin caused an ulcer."
    gold = Document("d", text, (Span(0, 7, "Chemical", "Aspirin", ids=("D001241",)),
                                Span(18, 23, "Disease", "ulcer", ids=("D014456",))),
                    (Relation("CID", "D001241", "D014456"),))
    pred, _ = ground_document(Document("d", text), [("Aspirin", "Chemical"),
                                                    ("ulcer", "Disease")],
                              {CID: [("Aspirin", "ulcer")]})
    report = evaluate([gold], [pred], modes=("strict",), bootstrap=0,
                      notes={"llm_hallucinations": 3})
    assert report.relations is not None and report.relations.micro.f1 == 1.0
    assert report.relations.basis == "surface-string"
    assert report.results["strict"].micro.f1 == 1.0
    assert report.to_dict()["notes"]["llm_hallucinations"] == 3
    assert "llm_hallucinations" in report.to_markdown()


def test_document_metadata_is_kept():
    doc = Document("d", "x y", metadata={"source": "s"})
    out, _ = ground_document(doc, [])
    assert out.metadata == {"source": "s"} and out.spans == () and out.relations == ()
    assert Relation("CID", "a", "b").args == "concept"
