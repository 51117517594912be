"""CoNLL/BIO reader, tokenizer and writer on canned inputs, including broken ones."""

from collections import Counter
from pathlib import Path

import pytest

from medner.document import Document, Span
from medner.errors import FormatError
from medner.io import conll
from medner.io.base import ReadReport

FIXTURE = Path(__file__).parent / "fixtures" / "io" / "small.conll"


def read(path):
    report = ReadReport()
    return conll.read(path, report=report), report


def test_reads_documents_sentences_and_entities():
    docs, report = read(FIXTURE)
    assert [d.id for d in docs] == ["small:1", "small:2"]
    assert docs[0].text == "Aspirin causes gastric ulcers .\nNaproxen too ."
    assert [(s.text, s.label) for s in docs[0].spans] == [
        ("Aspirin", "Chemical"), ("gastric ulcers", "Disease"), ("Naproxen", "Chemical")]
    assert [(s.text, s.label) for s in docs[1].spans] == [
        ("Cisplatin", "Chemical"), ("nephrotoxicity", "Disease"), ("renal failure", "Disease")]
    # IOB1-style I- at a sentence start, and an I- changing type, each start an entity.
    assert report.counts == {"I- tag not continuing an entity of its type (read as B-)": 2}
    assert report.examples[0].startswith(f"{FIXTURE}:9:")


def test_file_without_docstart_is_one_document(tmp_path):
    path = tmp_path / "plain.bio"
    path.write_text("Fever O\n\nAspirin B-Chemical\n")
    docs, _ = read(path)
    assert [(d.id, d.text) for d in docs] == [("plain:1", "Fever\nAspirin")]


@pytest.mark.parametrize("text, boundaries, tokens", [
    ("Aspirin, 5mg.", (), ["Aspirin", ",", "5mg", "."]),
    ("alpha-methyldopa [3H]", (), ["alpha", "-", "methyldopa", "[", "3H", "]"]),
    ("8\u2005mg\u200bdose", (), ["8", "mg", "dose"]),
    ("antihypertensive", (4,), ["anti", "hypertensive"]),
    ("  ", (), []),
])
def test_tokenize(text, boundaries, tokens):
    offsets = conll.tokenize(text, frozenset(boundaries))
    assert [text[a:b] for a, b in offsets] == tokens


def tags_of(doc):
    dropped = Counter()
    sentences = conll.to_bio(doc, dropped)
    return [[(doc.text[a:b], tag) for a, b, tag in s] for s in sentences], dropped


def test_to_bio_splits_words_at_mention_edges_and_sentences_outside_mentions():
    text = "No antihypertensive use. Dr. Smith gave St. John's wort.\nDone"
    spans = [Span(text.index(m), text.index(m) + len(m), "Drug", m)
             for m in ("hypertensive", "St. John's wort")]
    doc = Document("d", text, tuple(spans))
    sentences, dropped = tags_of(doc)
    assert sentences == [
        [("No", "O"), ("anti", "O"), ("hypertensive", "B-Drug"), ("use", "O"), (".", "O")],
        [("Dr", "O"), (".", "O")],
        [("Smith", "O"), ("gave", "O"), ("St", "B-Drug"), (".", "I-Drug"), ("John", "I-Drug"),
         ("'", "I-Drug"), ("s", "I-Drug"), ("wort", "I-Drug"), (".", "O")],
        [("Done", "O")],
    ]
    assert not dropped


def test_to_bio_counts_what_bio_cannot_hold():
    doc = Document("d", "acute liver injury  here", (
        Span(0, 18, "Disease", "acute liver injury"),
        Span(6, 18, "Disease", "liver injury"),
        Span(0, 11, "Disease", "acute liver", fragments=((0, 5), (6, 11))),
        Span(18, 20, "Disease", "  "),
    ))
    sentences, dropped = tags_of(doc)
    assert [tag for _, tag in sentences[0]] == ["B-Disease", "I-Disease", "I-Disease", "O"]
    assert dropped == {"discontinuous mentions": 1, "mentions overlapping an earlier one": 1,
                       "mentions covering no token": 1}


def test_write_then_read_keeps_mentions(tmp_path):
    docs, _ = read(FIXTURE)
    conll.write(docs, tmp_path / "out.conll")
    back, report = read(tmp_path / "out.conll")
    assert [(d.text, d.spans) for d in back] == [(d.text, d.spans) for d in docs]
    assert not report.counts  # the writer emits strict BIO


def test_write_warns_about_unwritten_mentions(tmp_path):
    doc = Document("d", "liver injury", (Span(0, 12, "Disease", "liver injury"),
                                         Span(6, 12, "Disease", "injury")))
    with pytest.warns(UserWarning, match="1 mentions overlapping an earlier one"):
        conll.write([doc], tmp_path / "out.conll")
    assert (tmp_path / "out.conll").read_text() == (
        "-DOCSTART-\tO\n\nliver\tB-Disease\ninjury\tI-Disease\n\n")


@pytest.mark.parametrize("content, line, message", [
    ("Aspirin B-Chemical\nulcers\n", 2, "expected a token and a tag"),
    ("Aspirin B-Chemical\nulcers E-Disease\n", 2, "is not O, B-<type> or I-<type>"),
    ("Aspirin B-\n", 1, "is not O, B-<type> or I-<type>"),
])
def test_bad_line_is_located(tmp_path, content, line, message):
    path = tmp_path / "bad.conll"
    path.write_text(content)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)


@pytest.mark.parametrize("raw, line, message", [
    (b"Aspirin O\n\nul\xe7ers O\n", 3, "not valid UTF-8"),
    (b"", None, "file is empty"),
])
def test_undecodable_or_empty_file(tmp_path, raw, line, message):
    path = tmp_path / "bad.conll"
    path.write_bytes(raw)
    with pytest.raises(FormatError, match=message) as info:
        read(path)
    assert (info.value.path, info.value.line) == (str(path), line)
