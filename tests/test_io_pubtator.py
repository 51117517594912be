"""PubTator reader and writer on a hand-written fixture and canned broken inputs."""

from pathlib import Path

import pytest

from medner.document import Document, Relation, Span
from medner.errors import FormatError, MednerError
from medner.io import jsonl, pubtator
from medner.io.base import ReadReport

FIXTURE = Path(__file__).parent / "fixtures" / "io" / "small.pubtator.txt"


def read(path, **kwargs):
    report = ReadReport()
    return pubtator.read(path, report=report, **kwargs), report


def test_reads_text_mentions_ids_and_relations():
    docs, report = read(FIXTURE)
    assert [d.id for d in docs] == ["100", "200"]
    first = docs[0]
    assert first.text.startswith("Aspirin causes ulcers. Gastric and duodenal")
    assert first.metadata[pubtator.TITLE_LENGTH] == len("Aspirin causes ulcers.")
    assert first.spans[0] == Span(0, 7, "Chemical", "Aspirin", ("D001241",))
    composite = first.spans[2]
    assert composite.ids == ("D013276", "D004381")
    assert composite.extra == ("Gastric ulcers|duodenal ulcers",)
    assert first.spans[5].text == "drug X" and first.spans[5].ids == ()
    assert first.relations == (Relation("CID", "D001241", "D014456"),
                               Relation("CID", "D009288", "D013276"))
    second = docs[1]
    assert second.spans[2].ids == ("D009794+D007592",)  # '+' joins one concept; space stripped
    assert report.counts == {"mention text corrected from offsets": 1}


def test_mention_differing_only_in_punctuation_takes_the_text():
    docs, report = read(FIXTURE)
    span = docs[1].spans[1]
    assert span.text == 'Generalized epilepsy and febrile seizures " plus "'
    assert docs[1].text[span.start:span.end] == span.text
    assert report.examples == [f"{FIXTURE}:15: mention text corrected from offsets"]


def test_write_reproduces_the_file_byte_for_byte(tmp_path):
    docs, _ = read(FIXTURE)
    pubtator.write(docs, tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_bytes() == FIXTURE.read_bytes()


def test_round_trip_through_jsonl_keeps_bytes(tmp_path):
    docs, _ = read(FIXTURE)
    jsonl.write(docs, tmp_path / "docs.jsonl")
    again = jsonl.read(tmp_path / "docs.jsonl", report=ReadReport())
    pubtator.write(again, tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_bytes() == FIXTURE.read_bytes()


def test_changed_span_is_written_from_its_fields(tmp_path):
    docs, _ = read(FIXTURE)
    doc = docs[1]
    edited = Span(doc.spans[2].start, doc.spans[2].end, "SpecificDisease", doc.spans[2].text,
                  ("D009794",))
    pubtator.write([Document(doc.id, doc.text, (edited,), metadata=doc.metadata)], tmp_path / "o")
    line = (tmp_path / "o").read_text().splitlines()[2]
    assert line == "200\t93\t115\tochronotic arthropathy\tSpecificDisease\tD009794"


def test_writes_a_document_from_another_format(tmp_path):
    text = "Fever after aspirin\nIt resolved."
    doc = Document("d1", text, (Span(12, 19, "Chemical", "aspirin", id="T1"),
                                Span(0, 5, "Disease", "Fever", id="T2")),
                   (Relation("CID", "T1", "T2", "span"),))
    with pytest.warns(UserWarning, match="1 span relations not written"):
        pubtator.write([doc], tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text().splitlines()[:2] == [
        "d1|t|Fever after aspirin", "d1|a|It resolved."]
    back, _ = read(tmp_path / "out.txt")
    assert back[0].text == text.replace("\n", " ")
    assert [(s.start, s.end, s.ids) for s in back[0].spans] == [(12, 19, ()), (0, 5, ())]


def test_rejects_a_document_id_that_is_not_a_pmid(tmp_path):
    with pytest.raises(MednerError, match="cannot be a PubTator PMID"):
        pubtator.write([Document("a|b", "x")], tmp_path / "out.txt")


HEAD = "1|t|Aspirin harms.\n1|a|It causes ulcers.\n"

BAD_INPUTS = [
    ("truncated line", HEAD + "1\t0\t7\tAspirin\tChemical\n", 3, "truncated line"),
    ("truncated relation", HEAD + "1\tCID\tD001\n", 3, "truncated line"),
    ("non-integer offset", HEAD + "1\t0\tseven\tAspirin\tChemical\tD1\n", 3, "non-integer offset"),
    ("offset outside text", HEAD + "1\t30\t40\tulcers\tDisease\tD1\n", 3, "outside the document"),
    ("mention not matching", HEAD + "1\t0\t7\tAspirix\tChemical\tD1\n", 3, "does not match"),
    ("no title line", HEAD + "\n2\t0\t7\tAspirin\tChemical\tD1\n", 4, "has no title line"),
    ("other PMID in block", HEAD + "2\t0\t7\tAspirin\tChemical\tD1\n", 3, "has no title line"),
    ("abstract without title", "1|a|It causes ulcers.\n", 1, "does not directly follow"),
    ("title without abstract", "1|t|Aspirin harms.\n\n", 1, "not followed by its '|a|'"),
    ("mention before abstract", "1|t|Aspirin.\n1\t0\t7\tAspirin\tChemical\tD1\n", 2,
     "before the '|a|' abstract"),
]


@pytest.mark.parametrize("content, line, message", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_located(tmp_path, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)


@pytest.mark.parametrize("raw, line, message", [
    (HEAD.encode() + b"1\t0\t7\tAsp\xffrin\tChemical\tD1\n", 3, "not valid UTF-8"),
    (b"\n\n", None, "file is empty"),
])
def test_undecodable_or_empty_file(tmp_path, raw, line, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_skip_policy_counts_and_drops_bad_mentions(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(HEAD + "1\t0\t7\tAspirix\tChemical\tD1\n1\t0\t7\tAspirin\tChemical\tD1\n")
    docs, report = read(path, on_mismatch="skip")
    assert len(docs[0].spans) == 1
    assert report.counts == {"skipped: mention/offset mismatch": 1}


def test_repeated_document_ids_are_kept(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text(HEAD + "\n" + HEAD + "\n")
    docs, _ = read(path)
    assert [d.id for d in docs] == ["1", "1"]


def test_missing_blank_line_between_documents_is_tolerated(tmp_path):
    path = tmp_path / "tight.txt"
    path.write_text(HEAD + HEAD.replace("1|", "2|"))
    assert [d.id for d in read(path)[0]] == ["1", "2"]
