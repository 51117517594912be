"""Every format streams through ``medner.io.iter_documents``: the same documents as the
readers' lists, one at a time, and a bad line late in a file is an error only when the
iteration reaches it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medner.document import Document, Span
from medner.errors import FormatError, MednerError
from medner.io import (
    FORMATS,
    count_documents,
    detect_format,
    format_module,
    iter_documents,
    read_corpus,
    write_corpus,
)
from medner.io.base import ReadReport
from medner.io.text import iter_paragraphs

FIXTURES = Path(__file__).parent / "fixtures" / "io"
READABLE = [
    ("small.pubtator.txt", "pubtator"),
    ("brat", "brat"),
    ("brat/case1.ann", "brat"),
    ("small.bioc.xml", "bioc"),
    ("small.conll", "conll"),
    ("small.instruct.jsonl", "instruct"),
]


def jsonl_file(path: Path, n: int) -> Path:
    write_corpus([Document(f"d{i}", f"Aspirin {i} causes ulcers.", (Span(0, 7, "Chemical",
                                                                          "Aspirin"),))
                  for i in range(n)], path, "jsonl")
    return path


@pytest.mark.parametrize(("name", "fmt"), READABLE)
def test_iter_documents_gives_the_readers_documents_lazily(name, fmt):
    path = FIXTURES / name
    stream = iter_documents(path)
    assert isinstance(stream, Iterator) and not isinstance(stream, list)
    report = ReadReport()
    listed = format_module(fmt).read(path, report=report)
    assert list(stream) == listed
    corpus = read_corpus(path)
    assert (corpus.format, corpus.documents, corpus.report.counts) == (fmt, listed, report.counts)


def test_every_format_module_has_a_generator_reader():
    for name in FORMATS:
        module = format_module(name)
        assert callable(module.iter_read) and callable(module.read), name


def test_the_path_and_format_are_checked_before_iteration(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        iter_documents(tmp_path / "missing.jsonl")
    with pytest.raises(MednerError, match="unknown format 'xml'"):
        iter_documents(FIXTURES / "small.conll", "xml")
    with pytest.raises(FormatError, match="is a folder; jsonl input must be a file"):
        iter_documents(FIXTURES / "brat", "jsonl")


# --- a late error is raised late: nothing reads ahead of the iteration ------------------------


def late_jsonl(tmp_path: Path) -> tuple[Path, int]:
    path = jsonl_file(tmp_path / "late.jsonl", 3)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "bad", "text": \n')
    return path, 4


def late_pubtator(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "late.pubtator"
    good = (FIXTURES / "small.pubtator.txt").read_text(encoding="utf-8")
    path.write_text(good + "\n300|t|T\n300|a|A\n300\tzero\t1\tT\tChemical\tD1\tx\n",
                    encoding="utf-8")
    return path, good.count("\n") + 4


def late_conll(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "late.conll"
    good = (FIXTURES / "small.conll").read_text(encoding="utf-8")
    path.write_text(good + "\n-DOCSTART- O\n\nlonely\n", encoding="utf-8")
    return path, good.count("\n") + 4


def late_bioc(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "late.xml"
    good = (FIXTURES / "small.bioc.xml").read_text(encoding="utf-8")
    head, tail = good.rsplit("</collection>", 1)
    bad = "<document><id>9</id>\n<passage><text>x</text></passage></document>\n"
    path.write_text(head + bad + "</collection>" + tail, encoding="utf-8")
    return path, head.count("\n") + 1


def late_brat(tmp_path: Path) -> tuple[Path, int]:
    folder = tmp_path / "late-brat"
    shutil.copytree(FIXTURES / "brat", folder)
    (folder / "zz.txt").write_text("Aspirin.", encoding="utf-8")
    (folder / "zz.ann").write_text("T1\tChemical 0 7\tAspirin\nT2\tChemical zero 7\tx\n",
                                   encoding="utf-8")
    return folder, 2


@pytest.mark.parametrize("make", [late_jsonl, late_pubtator, late_conll, late_bioc, late_brat])
def test_a_bad_late_line_is_raised_only_when_reached(tmp_path, make):
    path, line = make(tmp_path)
    stream = iter_documents(path)
    first = next(stream)  # read without reaching the bad line
    assert first.text
    with pytest.raises(FormatError) as info:
        list(stream)
    assert info.value.line == line


def test_bioc_streams_past_a_large_head_before_a_syntax_error(tmp_path):
    """lxml parses in chunks: the first document of a large file comes out before the
    parser reaches malformed XML megabytes later."""
    good = (FIXTURES / "small.bioc.xml").read_text(encoding="utf-8")
    head, _ = good.rsplit("</collection>", 1)
    start, document = head.split("<document>", 1)
    document = "<document>" + document.split("</document>", 1)[0] + "</document>\n"
    copies = 2_000_000 // len(document) + 1
    path = tmp_path / "big.xml"
    path.write_text(start + document * copies + "<document><id>x</passage>\n", encoding="utf-8")
    stream = iter_documents(path)
    assert next(stream).id == "300"
    with pytest.raises(FormatError, match="not well-formed XML") as info:
        list(stream)
    assert info.value.line == start.count("\n") + document.count("\n") * copies + 1


def test_instruct_reads_every_record_before_the_first_document(tmp_path):
    """An article's records may stand anywhere in the file, so they are all read first."""
    path = tmp_path / "late.instruct.jsonl"
    good = (FIXTURES / "small.instruct.jsonl").read_text(encoding="utf-8")
    path.write_text(good + '{"prompt": "no template", "completion": "- x"}\n', encoding="utf-8")
    with pytest.raises(FormatError, match="template") as info:
        next(iter_documents(path))
    assert info.value.line == good.count("\n") + 1


# --- plain text and Parquet --------------------------------------------------------------------


def test_plain_text_is_a_read_only_format(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("She has malaria.\n\nAnd fever.\n", encoding="utf-8")
    assert detect_format(path) == "pubtator"  # an annotated corpus is never guessed as text
    assert detect_format(path, plain_text=True) == "text"
    (doc,) = iter_documents(path, plain_text=True)
    assert (doc.id, doc.text, doc.spans) == ("note", "She has malaria.\n\nAnd fever.\n", ())
    assert read_corpus(path, "text").documents == [doc]
    assert count_documents(path, "text") == 1
    with pytest.raises(MednerError, match="text is read only"):
        write_corpus([doc], tmp_path / "out.txt", "text")


def old_paragraphs(text: str, stem: str) -> list[Document]:
    """``medner.pretrain.read_documents`` before paragraphs were streamed."""
    paragraphs = [block.strip() for block in text.split("\n\n")]
    return [Document(f"{stem}:{i + 1}", t) for i, t in enumerate(t for t in paragraphs if t)]


@given(st.lists(st.sampled_from(["a", "b c", "", " ", "\t", "\r", "x\r"]), min_size=1)
       .map("\n".join).filter(str.strip))
def test_paragraphs_stream_as_they_were_split(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("paragraphs") / "p.txt"
    path.write_bytes(text.encode())
    assert list(iter_paragraphs(path)) == old_paragraphs(text, "p")


def test_parquet_is_read_by_record_batch(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    table = pa.table({"id": [f"p{i}" for i in range(25)], "text": [f"text {i}" for i in range(25)],
                      "other": list(range(25))})
    pq.write_table(table, path, row_group_size=10)
    assert detect_format(path) == "parquet"
    assert count_documents(path) == 25
    stream = iter_documents(path)
    assert next(stream) == Document("p0", "text 0")
    assert [d.id for d in stream] == [f"p{i}" for i in range(1, 25)]
    assert read_corpus(path).format == "parquet"
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "no-text.parquet")
    with pytest.raises(FormatError, match="missing text"):
        list(iter_documents(tmp_path / "no-text.parquet"))
    (tmp_path / "fake.parquet").write_text("not parquet", encoding="utf-8")
    with pytest.raises(FormatError, match="not a Parquet file"):
        list(iter_documents(tmp_path / "fake.parquet"))


@pytest.mark.parametrize(("name", "expected"), [
    ("small.pubtator.txt", 2), ("brat", 2), ("brat/case1.ann", 1), ("small.bioc.xml", None),
    ("small.conll", None), ("small.instruct.jsonl", None),
])
def test_count_documents_is_cheap_or_none(name, expected):
    assert count_documents(FIXTURES / name) == expected
