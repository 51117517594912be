import pytest

from medner.document import Document, Relation, Span, corpus_fingerprint, normalize_text


def test_span_rejects_empty_or_negative_offsets():
    with pytest.raises(ValueError):
        Span(5, 5, "Disease", "")
    with pytest.raises(ValueError):
        Span(-1, 3, "Disease", "abc")


def test_document_dict_round_trip_keeps_everything():
    doc = Document(
        "d1",
        "Naloxone reverses hypertension.",
        (
            Span(0, 8, "Chemical", "Naloxone", ids=("D009270",), id="T1"),
            Span(18, 30, "Disease", "hypertension", ids=("D006973",), score=0.91234, id="T2"),
        ),
        (
            Relation("CID", "D009270", "D006973"),
            Relation("treats", "T1", "T2", args="span", id="R1"),
        ),
        {"title_length": 31},
    )
    again = Document.from_dict(doc.to_dict())
    assert again == doc
    assert again.metadata == {"title_length": 31}
    assert again.spans[1].score == 0.91234


def test_discontinuous_span_pieces():
    span = Span(0, 12, "Disease", "left ... pain", fragments=((0, 4), (9, 12)))
    assert span.pieces == ((0, 4), (9, 12))
    assert Span(3, 7, "X", "abcd").pieces == ((3, 7),)


def test_relation_args_validated():
    with pytest.raises(ValueError, match="args"):
        Relation.from_dict({"label": "CID", "head": "a", "tail": "b", "args": "mention"})


def test_normalize_text_and_fingerprint():
    assert normalize_text("  Fever\u2009AND\n pain ") == "fever and pain"
    a = [Document("1", "x y", (Span(0, 1, "A", "x"),))]
    b = [Document("1", "x y", (Span(0, 1, "B", "x"),))]
    assert corpus_fingerprint(a) != corpus_fingerprint(b)
    assert corpus_fingerprint(a) == corpus_fingerprint(list(a))


def test_span_attributes_round_trip_and_stay_sorted():
    span = Span(0, 5, "SYMPTOM", "fever", attributes=(("TREND", "INC"), ("assertion", "absent")))
    assert span.attributes == (("TREND", "INC"), ("assertion", "absent"))
    assert span.assertion == "absent" and span.attribute("TREND") == "INC"
    assert span.to_dict()["attributes"] == {"TREND": "INC", "assertion": "absent"}
    assert Span.from_dict(span.to_dict()) == span
    assert span.with_attribute("assertion", "possible").assertion == "possible"
    assert "attributes" not in Span(0, 5, "SYMPTOM", "fever").to_dict()
    with pytest.raises(ValueError, match="'attributes' must map names to text values"):
        Span.from_dict({**span.to_dict(), "attributes": {"assertion": 1}})
