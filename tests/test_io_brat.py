"""brat standoff reader and writer on a hand-written folder and canned broken inputs."""

import shutil
from pathlib import Path

import pytest

from medner.document import Document, Relation, Span
from medner.errors import FormatError
from medner.io import brat, jsonl
from medner.io.base import ReadReport

FOLDER = Path(__file__).parent / "fixtures" / "io" / "brat"


def read(path, **kwargs):
    report = ReadReport()
    return brat.read(path, report=report, **kwargs), report


def lines_of_kind(path, kind):
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line[:1] == kind]


def test_reads_a_folder_sorted_with_every_line_kind_accounted_for():
    docs, report = read(FOLDER)
    assert [d.id for d in docs] == ["case1", "case2"]
    case1 = docs[0]
    assert case1.spans[0] == Span(2, 13, "Age", "28-year-old", id="T1")
    discontinuous = case1.span_by_id()["T7"]
    assert discontinuous.fragments == ((33, 38), (39, 43))
    assert (discontinuous.start, discontinuous.end, discontinuous.text) == (33, 43, "chest pain")
    assert case1.relations[1] == Relation("BEFORE", "E1", "E2", "span", id="R2")
    assert case1.metadata[brat.ROLES] == {"R3": ["Cause", "Effect"]}
    assert case1.metadata[brat.EVENT_TRIGGERS] == {"E1": "T3", "E2": "T4"}
    assert len(case1.metadata[brat.OTHER_LINES]) == 5
    assert case1.span_by_id()["T4"].attributes == (("assertion", "absent"),)  # A1 on E2
    assert docs[1].spans == () and docs[1].text == "No findings.\n"
    assert report.counts == {
        "brat: kept event lines (E)": 2,
        "brat: attribute lines read as span attributes (A)": 1,
        "brat: kept equivalence lines (*)": 1,
        "brat: kept note lines (#)": 1,
        "brat: kept unknown kind lines (X)": 1,
        "brat: T text column with trailing whitespace (kept for writing)": 1,
        "skipped: .txt without .ann": 1,
    }


def test_trailing_whitespace_in_text_column_is_accepted():
    docs, _ = read(FOLDER)
    assert docs[0].span_by_id()["T5"].text == "8\u2005mg"


@pytest.mark.parametrize("name", ["case1.ann", "case1.txt"])
def test_reads_a_single_file_pair(name):
    docs, _ = read(FOLDER / name)
    assert [d.id for d in docs] == ["case1"]


def test_write_gives_back_t_and_r_lines_and_text(tmp_path):
    docs, _ = read(FOLDER)
    jsonl.write(docs, tmp_path / "docs.jsonl")  # metadata must survive medner's own format
    brat.write(jsonl.read(tmp_path / "docs.jsonl", report=ReadReport()), tmp_path / "out")
    for stem in ("case1", "case2"):
        original, written = FOLDER / f"{stem}.ann", tmp_path / "out" / f"{stem}.ann"
        for kind in "TR":
            assert lines_of_kind(written, kind) == lines_of_kind(original, kind)
        assert sorted(written.read_text().splitlines()) == sorted(original.read_text().splitlines())
        text = f"{stem}.txt"
        assert (tmp_path / "out" / text).read_bytes() == (FOLDER / text).read_bytes()
    assert read(tmp_path / "out")[0] == docs


def test_writes_documents_from_other_formats(tmp_path):
    doc = Document("PMID:1/a", "Aspirin caused ulcers.",
                   (Span(0, 7, "Chemical", "Aspirin", id="c1"), Span(15, 21, "Disease", "ulcers")),
                   (Relation("CID", "c1", "T9", "span"), Relation("CID", "D1", "D2", "concept")))
    expected = "2 documents whose file name differs.*2 concept relations not written"
    with pytest.warns(UserWarning, match=expected):
        brat.write([doc, doc], tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "PMID_1_a.ann", "PMID_1_a.txt", "PMID_1_a_2.ann", "PMID_1_a_2.txt"]
    assert (tmp_path / "out" / "PMID_1_a.ann").read_text().splitlines() == [
        "T1\tChemical 0 7\tAspirin",
        "T2\tDisease 15 21\tulcers",
        "R1\tCID Arg1:T1 Arg2:T9\t",
    ]


def write_pair(folder, ann, text="Aspirin caused ulcers.\n"):
    folder.mkdir(exist_ok=True)
    (folder / "d.txt").write_text(text, encoding="utf-8")
    (folder / "d.ann").write_text(ann, encoding="utf-8")
    return folder / "d.ann"


BAD_ANN = [
    ("truncated T line", "T1\tChemical 0 7\n", 1, "truncated T line"),
    ("T line without offsets", "T1\tChemical\tAspirin\n", 1, "truncated T line"),
    ("non-integer offset", "T1\tChemical 0 x\tAspirin\n", 1, "non-integer offset"),
    ("offset outside text", "T1\tChemical 0 7\tAspirin\nT2\tDisease 15 90\tulcers\n", 2,
     "outside the document"),
    ("mention not matching", "T1\tChemical 0 7\tAspirix\n", 1, "does not match"),
    ("bad R line", "T1\tChemical 0 7\tAspirin\nR1\tCID Arg1:T1\t\n", 2, "bad R line"),
]


@pytest.mark.parametrize("ann, line, message", [c[1:] for c in BAD_ANN],
                         ids=[c[0] for c in BAD_ANN])
def test_bad_annotation_is_located(tmp_path, ann, line, message):
    path = write_pair(tmp_path, ann)
    with pytest.raises(FormatError, match=message) as info:
        read(tmp_path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_skip_policy_counts_bad_mentions(tmp_path):
    write_pair(tmp_path, "T1\tChemical 0 7\tAspirix\nT2\tDisease 15 21\tulcers\n")
    docs, report = read(tmp_path, on_mismatch="skip")
    assert [s.id for s in docs[0].spans] == ["T2"]
    assert report.counts == {"skipped: mention/offset mismatch": 1}


def test_non_utf8_byte_in_either_file_is_located(tmp_path):
    path = write_pair(tmp_path, "")
    path.write_bytes(b"T1\tChemical 0 7\tAspirin\nT2\tDisease 15 21\tulc\xe9rs\n")
    with pytest.raises(FormatError, match="not valid UTF-8") as info:
        read(tmp_path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    (tmp_path / "d.txt").write_bytes(b"line one\nline \xff two\n")
    with pytest.raises(FormatError, match="not valid UTF-8") as info:
        read(tmp_path)
    assert (info.value.path, info.value.line) == (str(tmp_path / "d.txt"), 2)


def test_empty_text_file_is_an_error_but_empty_ann_is_not(tmp_path):
    write_pair(tmp_path, "")
    assert read(tmp_path)[0][0].spans == ()
    (tmp_path / "d.txt").write_text("")
    with pytest.raises(FormatError, match="file is empty") as info:
        read(tmp_path)
    assert (info.value.path, info.value.line) == (str(tmp_path / "d.txt"), None)


def test_ann_without_txt_is_an_error(tmp_path):
    shutil.copy(FOLDER / "case1.ann", tmp_path / "lonely.ann")
    with pytest.raises(FormatError, match="needs both") as info:
        read(tmp_path)
    assert info.value.path == str(tmp_path / "lonely.txt")


def test_attributes_read_from_events_and_spans_and_written_back(tmp_path):
    path = write_pair(tmp_path, "T1\tChemical 0 7\tAspirin\nT2\tDisease 15 21\tulcers\n"
                                "E1\tDisease:T2 \nA1\tPOLARITY E1 UNCERTAIN\nA2\tTREND T1 INC\n"
                                "M3\tNegated T1\n")
    doc = read(tmp_path)[0][0]
    aspirin, ulcers = doc.spans
    assert ulcers.assertion == "possible"
    assert aspirin.attributes == (("Negated", "true"), ("TREND", "INC"))
    assert aspirin.assertion is None
    brat.write([doc], tmp_path / "same")
    assert sorted((tmp_path / "same" / "d.ann").read_text().splitlines()) == sorted(
        path.read_text().splitlines())
    changed = doc.with_spans([aspirin.with_attribute("assertion", "absent"),
                              ulcers.with_attribute("assertion", "absent")])
    brat.write([changed], tmp_path / "changed")
    lines = (tmp_path / "changed" / "d.ann").read_text().splitlines()
    assert [line for line in lines if line[0] in "AM"] == [
        "M3\tNegated T1", "A2\tTREND T1 INC", "A3\tAssertion T1 absent", "A4\tAssertion T2 absent"]
    again = read(tmp_path / "changed")[0][0]
    assert [s.assertion for s in again.spans] == ["absent", "absent"]


BAD_ATTRIBUTES = [
    ("missing span", "A1\tPOLARITY T9 NEG\n", "names T9, which is no span or event"),
    ("unknown value", "A1\tPOLARITY T1 SOMETIMES\n", "unknown POLARITY value 'SOMETIMES'"),
    ("no target", "A1\tPOLARITY\n", "bad attribute line"),
]


@pytest.mark.parametrize("line, message", [c[1:] for c in BAD_ATTRIBUTES],
                         ids=[c[0] for c in BAD_ATTRIBUTES])
def test_bad_attribute_line_is_located_or_skipped(tmp_path, line, message):
    path = write_pair(tmp_path, "T1\tChemical 0 7\tAspirin\n" + line)
    with pytest.raises(FormatError, match=message) as info:
        read(tmp_path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    if "bad attribute line" not in message:
        docs, report = read(tmp_path, on_mismatch="skip")
        assert docs[0].spans[0].attributes == ()
        assert sum(n for kind, n in report.counts.items() if kind.startswith("skipped")) == 1
