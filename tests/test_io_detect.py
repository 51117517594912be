"""Each hand-written fixture is recognised and read through the format registry."""

from pathlib import Path

import pytest

from medner.io import read_corpus

FIXTURES = Path(__file__).parent / "fixtures" / "io"


@pytest.mark.parametrize("name, fmt, documents", [
    ("small.pubtator.txt", "pubtator", 2),
    ("brat", "brat", 2),
    ("brat/case1.ann", "brat", 1),
    ("small.bioc.xml", "bioc", 2),
    ("small.conll", "conll", 2),
    ("small.instruct.jsonl", "instruct", 2),
])
def test_read_corpus_detects_the_format(name, fmt, documents):
    corpus = read_corpus(FIXTURES / name)
    assert (corpus.format, len(corpus.documents)) == (fmt, documents)
