"""BioC XML reader and writer on a hand-written collection and canned broken inputs."""

from pathlib import Path

import pytest

from medner.document import Document, Relation, Span
from medner.errors import FormatError
from medner.io import bioc_xml, pubtator
from medner.io.base import ReadReport

FIXTURE = Path(__file__).parent / "fixtures" / "io" / "small.bioc.xml"


def read(path, **kwargs):
    report = ReadReport()
    return bioc_xml.read(path, report=report, **kwargs), report


def test_reads_passages_annotations_and_relations():
    docs, report = read(FIXTURE)
    first, second = docs
    assert first.id == "300"
    assert first.text == "Cisplatin nephrotoxicity. Renal and hepatic toxicity followed cisplatin."
    assert first.spans[0] == Span(0, 9, "Chemical", "Cisplatin", ("D002945",), id="1")
    assert first.spans[1].ids == ("D007674", "D056486")
    assert first.spans[2] == Span(26, 52, "Disease", "Renal toxicity",
                                  fragments=((26, 31), (44, 52)), id="3")
    assert first.relations == (Relation("CID", "D002945", "D007674", "concept", "R0"),
                               Relation("CAUSES", "4", "3", "span", "R1"))
    assert first.metadata[bioc_xml.INFONS] == {"journal": "Test J"}
    # The sentence-only passage is placed at its offset; the gap is padded with spaces.
    assert second.text == "Fever after ibuprofen.        No rash."
    assert [s.text for s in second.spans] == ["ibuprofen", "rash"]
    assert second.relations == ()
    assert report.counts == {"skipped: relation without two nodes or two concept infons": 1}


def test_write_then_read_gives_equal_documents(tmp_path):
    docs, _ = read(FIXTURE)
    bioc_xml.write(docs, tmp_path / "out.xml")
    assert read(tmp_path / "out.xml")[0] == docs


def test_writing_is_deterministic(tmp_path):
    docs, _ = read(FIXTURE)
    bioc_xml.write(docs, tmp_path / "a.xml")
    bioc_xml.write(docs, tmp_path / "b.xml")
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes()


def test_pubtator_documents_become_title_and_abstract_passages(tmp_path):
    fixture = FIXTURE.with_name("small.pubtator.txt")
    docs = pubtator.read(fixture, report=ReadReport())
    bioc_xml.write(docs, tmp_path / "out.xml")
    back, _ = read(tmp_path / "out.xml")
    assert back == docs
    assert [p[2] for p in back[0].metadata[bioc_xml.PASSAGES]] == [{"type": "title"},
                                                                   {"type": "abstract"}]


def test_scores_and_unnamed_spans_survive(tmp_path):
    doc = Document("d", "Aspirin and ulcers", (Span(0, 7, "Chemical", "Aspirin", score=0.875),
                                                Span(12, 18, "Disease", "ulcers", extra=("x",))))
    bioc_xml.write([doc], tmp_path / "out.xml")
    assert read(tmp_path / "out.xml")[0] == [doc]


def test_span_attributes_survive_as_infons(tmp_path):
    from medner.errors import MednerError

    negated = Span(12, 18, "Disease", "ulcers", attributes=(("assertion", "absent"),
                                                            ("TREND", "INC")))
    doc = Document("d", "Aspirin and ulcers", (Span(0, 7, "Chemical", "Aspirin"), negated))
    bioc_xml.write([doc], tmp_path / "out.xml")
    assert '<infon key="assertion">absent</infon>' in (tmp_path / "out.xml").read_text()
    assert read(tmp_path / "out.xml")[0] == [doc]
    clash = doc.with_spans([Span(0, 7, "Chemical", "Aspirin", attributes=(("type", "x"),))])
    with pytest.raises(MednerError, match="attribute 'type' would overwrite"):
        bioc_xml.write([clash], tmp_path / "clash.xml")


def collection(body):
    """A one-document collection whose ``body`` starts on line 4."""
    return (f"<?xml version='1.0' encoding='utf-8'?>\n<collection><source/><date/><key/>\n"
            f"<document><id>9</id>\n{body}\n</document></collection>\n")


PASSAGE = "<passage><offset>0</offset><text>Aspirin harms.</text>\n"
ANNOTATION = ('<annotation id="a1"><infon key="type">Chemical</infon>'
              '<location offset="{o}" length="{n}"/><text>{t}</text></annotation>')

BAD_INPUTS = [
    ("malformed XML", collection(PASSAGE + "</passage"), 6, "not well-formed"),
    ("offset outside text", collection(PASSAGE + "\n" + ANNOTATION.format(o=10, n=20, t="x")
                                       + "</passage>"), 6, "outside the document"),
    ("mention not matching", collection(PASSAGE + ANNOTATION.format(o=0, n=7, t="Aspirix")
                                        + "</passage>"), 5, "does not match"),
    ("annotation without type", collection(
        PASSAGE + '<annotation id="a1"><location offset="0" length="7"/></annotation></passage>'),
     5, "needs a 'type' infon"),
    ("overlapping passages", collection(
        PASSAGE + "</passage>\n<passage><offset>3</offset><text>x</text></passage>"), 6,
     "overlaps"),
    ("passage without offset", collection("<passage><text>x</text></passage>"), 3,
     "not a BioC collection"),  # located at its <document>
]


@pytest.mark.parametrize("content, line, message", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_located(tmp_path, content, line, message):
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)


@pytest.mark.parametrize("raw, line, message", [
    (collection(PASSAGE + "</passage>").encode().replace(b"harms", b"h\xffrms"), 4, "encoding"),
    (b"  \n", None, "file is empty"),
])
def test_undecodable_or_empty_file(tmp_path, raw, line, message):
    path = tmp_path / "bad.xml"
    path.write_bytes(raw)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_skip_policy_counts_bad_annotations(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text(collection(PASSAGE + ANNOTATION.format(o=0, n=7, t="Aspirix") + "</passage>"))
    docs, report = read(path, on_mismatch="skip")
    assert docs[0].spans == ()
    assert report.counts == {"skipped: mention/offset mismatch": 1}
