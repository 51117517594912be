"""Instruction prompt/completion JSONL: import with grounding, export in the tutorial's text."""

import json
from pathlib import Path

import pytest

from medner.document import Document, Relation, Span, text_fingerprint
from medner.errors import FormatError
from medner.io import instruct
from medner.io.base import ReadReport

FIXTURE = Path(__file__).parent / "fixtures" / "io" / "small.instruct.jsonl"
ARTICLE = ("Cocaine-induced seizures and acute liver injury were seen. Later, liver injury "
           "followed acetaminophen overdose; cocaine was stopped.")


def read(path):
    report = ReadReport()
    return instruct.read(path, report=report), report


def test_records_of_one_article_merge_into_one_grounded_document():
    docs, _ = read(FIXTURE)
    assert len(docs) == 2
    doc = docs[0]
    assert doc.id == f"instruct:{text_fingerprint(ARTICLE)}"
    assert doc.text == ARTICLE
    assert doc.metadata[instruct.TASKS] == ["diseases", "chemicals", "influences"]
    assert [(s.id, s.text, s.label) for s in doc.spans] == [
        ("T1", "Cocaine", "Chemical"),
        ("T2", "seizures", "Disease"),
        ("T3", "acute liver injury", "Disease"),
        ("T4", "liver injury", "Disease"),  # its occurrence inside T3 is not a separate span
        ("T5", "acetaminophen", "Chemical"),
        ("T6", "cocaine", "Chemical"),
    ]
    assert doc.relations == (Relation("CID", "T1", "T2", "span"),
                             Relation("CID", "T5", "T4", "span"))
    assert docs[1].spans == () and docs[1].metadata[instruct.TASKS] == ["chemicals"]


def test_items_not_in_the_text_are_counted_with_examples():
    _, report = read(FIXTURE)
    assert report.counts == {"item not found in text": 2,
                             "influence not grounded (a side is not in the text)": 1}
    assert f"{FIXTURE}:1: 'hepatitis': item not found in text" in report.examples
    assert f"{FIXTURE}:3: 'paracetamol': item not found in text" in report.examples


def test_export_reproduces_the_prompts_exactly(tmp_path):
    originals = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    docs, _ = read(FIXTURE)
    instruct.write(docs, tmp_path / "out.jsonl")
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in exported] == [r["prompt"] for r in originals]
    assert [r["completion"] for r in exported] == [
        "- seizures\n- acute liver injury\n- liver injury",
        "- Cocaine\n- acetaminophen\n- cocaine",
        "- Chemical Cocaine influences disease seizures\n"
        "- Chemical acetaminophen influences disease liver injury",
        "- ",  # the tutorial's empty list
    ]
    # An unchanged record is written back byte for byte.
    written = (tmp_path / "out.jsonl").read_text().splitlines()
    assert written[3] == FIXTURE.read_text().splitlines()[3]


def test_export_of_a_corpus_document_uses_concept_relations():
    text = "Aspirin caused ulcers; aspirin was stopped."
    doc = Document("1", text, (Span(0, 7, "Chemical", "Aspirin", ("D001",)),
                               Span(15, 21, "Disease", "ulcers", ("D002",)),
                               Span(23, 30, "Chemical", "aspirin", ("D001",))),
                   (Relation("CID", "D001", "D002"),))
    records = instruct.records(doc)
    assert [r["prompt"] for r in records] == [instruct.build_prompt(text, t)
                                              for t in ("diseases", "chemicals", "influences")]
    assert [r["completion"] for r in records] == [
        "- ulcers", "- Aspirin\n- aspirin", "- Chemical Aspirin influences disease ulcers"]
    assert records[0]["prompt"].startswith(instruct.INSTRUCTIONS["diseases"] + "\n\n" + text)
    assert records[0]["prompt"].endswith("\n\nList of extracted diseases:\n")


def prompt(task, text="Fever after aspirin."):
    return instruct.build_prompt(text, task)


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "x", ', "invalid JSON"),
    ('["prompt", "completion"]', "expected a JSON object"),
    (json.dumps({"prompt": prompt("diseases")}), "missing or non-string field 'completion'"),
    (json.dumps({"prompt": "List the diseases.", "completion": "- fever"}),
     "prompt does not follow the template"),
    (json.dumps({"prompt": prompt("diseases").replace("list only", "list"), "completion": ""}),
     "prompt does not follow the template"),
])
def test_bad_record_is_located(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"prompt": prompt("diseases"), "completion": "- Fever"})
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), 3)


@pytest.mark.parametrize("raw, line, message", [
    (b'{"prompt": "caf\xe9"}\n', 1, "not valid UTF-8"),
    (b"\n", None, "file is empty"),
])
def test_undecodable_or_empty_file(tmp_path, raw, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_bad_completion_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / "odd.jsonl"
    records = [{"prompt": prompt("diseases"), "completion": "Fever\n- fever"},
               {"prompt": prompt("influences"), "completion": "- aspirin causes fever"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    docs, report = read(path)
    assert [s.text for s in docs[0].spans] == ["Fever"]  # case-insensitive fallback
    assert report.counts == {
        "completion line without '- ' (ignored)": 1,
        "influence not in 'Chemical X influences disease Y' form (ignored)": 1,
    }
