"""Streaming, resumable extraction to a file (``medner.batch``)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medner.batch import (
    SOURCE_ID,
    extract_to_file,
    iter_documents,
    journal_path,
    open_journal,
    output_format_on_disk,
)
from medner.document import Document, Span
from medner.errors import FormatError, MednerError
from medner.io import count_documents, read_corpus, write_corpus

FIXTURES = Path(__file__).parent / "fixtures" / "io"
WORDS = {"malaria": "DISEASE", "fever": "SYMPTOM", "aspirin": "DRUG", "chest": "BODY_PART"}


class FakeModel:
    """Tags known words; optionally dies after ``crash_after`` prediction calls."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.crash_after = crash_after
        self.calls = 0
        self.predicted: list[str] = []

    def predict(self, documents, progress=False):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        out = []
        for doc in documents:
            spans = [Span(m.start(), m.end(), WORDS[m[0].lower()], m[0], score=0.9)
                     for m in re.finditer(r"\w+", doc.text) if m[0].lower() in WORDS]
            out.append(Document(doc.id, doc.text, metadata=doc.metadata).with_spans(spans))
            self.predicted.append(doc.id)
        return out


def make_corpus(path: Path, n: int, *, start: int = 0) -> Path:
    docs = [Document(f"d{i}", f"Patient {i} had fever and malaria after aspirin.",
                     (Span(len(f"Patient {i} had "), len(f"Patient {i} had fever"), "GOLD",
                           "fever"),))
            for i in range(start, start + n)]
    write_corpus(docs, path, "jsonl")
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ids_of(path: Path) -> list[str]:
    return [r["id"] for r in records(path)]


# --- reading inputs --------------------------------------------------------------------------


def doc_key(doc: Document):
    return doc.id, doc.text, [(s.start, s.end, s.label, s.text, s.ids) for s in doc.spans], \
        doc.relations


@pytest.mark.parametrize("name", ["small.pubtator.txt"])
def test_streamed_pubtator_equals_the_reader(name):
    path = FIXTURES / name
    streamed = list(iter_documents(path))
    read = read_corpus(path, "pubtator", on_mismatch="skip").documents
    assert [doc_key(d) for d in streamed] == [doc_key(d) for d in read]
    assert [d.metadata for d in streamed] == [d.metadata for d in read]
    assert count_documents(path) == len(read)


def test_streamed_jsonl_equals_the_reader(tmp_path):
    path = make_corpus(tmp_path / "c.jsonl", 7)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n   \n")  # blank lines are allowed
    assert [doc_key(d) for d in iter_documents(path)] == \
        [doc_key(d) for d in read_corpus(path).documents]
    assert count_documents(path) == 7


def test_plain_text_is_one_document_per_file(tmp_path):
    path = tmp_path / "note 1.txt"
    path.write_text("Line one.\nShe has malaria.\n", encoding="utf-8")
    (doc,) = iter_documents(path)
    assert (doc.id, doc.text) == ("note 1", "Line one.\nShe has malaria.\n")
    assert count_documents(path, plain_text=True) == 1


def test_brat_folder_goes_through_the_reader():
    docs = list(iter_documents(FIXTURES / "brat"))
    assert [d.id for d in docs] == [d.id for d in read_corpus(FIXTURES / "brat").documents]


@pytest.mark.parametrize(("content", "where"), [
    (b'{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', ":2:"),
    (b'{"id": "a", "text": "ok"}\n\xff\xfe\n', ":2:"),
])
def test_bad_input_lines_are_located(tmp_path, content, where):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        list(iter_documents(path))
    assert where in str(info.value)


def test_empty_input_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(FormatError, match="file is empty"):  # as read_corpus says
        list(iter_documents(path, "jsonl"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(FormatError, match=r"no documents found \(read as brat\)"):
        list(iter_documents(tmp_path / "folder"))


# --- extraction and formats ------------------------------------------------------------------


def test_jsonl_output_one_record_per_document(tmp_path):
    src = make_corpus(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out" / "pred.jsonl"
    result = extract_to_file(FakeModel(), [src], out, batch_size=3, progress=False)
    assert (result.documents, result.extracted, result.skipped) == (10, 10, 0)
    assert ids_of(out) == [f"d{i}" for i in range(10)]
    docs = read_corpus(out).documents  # medner's own reader checks every offset
    assert [(s.label, s.text) for s in docs[0].spans] == \
        [("SYMPTOM", "fever"), ("DISEASE", "malaria"), ("DRUG", "aspirin")]
    assert all(s.score == 0.9 for s in docs[0].spans)
    assert "GOLD" not in out.read_text(encoding="utf-8")  # gold spans are replaced


def test_several_inputs_and_formats_in_order(tmp_path):
    a = make_corpus(tmp_path / "a.jsonl", 2)
    note = tmp_path / "note.txt"
    note.write_text("fever in the chest", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    extract_to_file(FakeModel(), [a, FIXTURES / "small.pubtator.txt", note], out, progress=False)
    assert ids_of(out) == ["d0", "d1", "100", "200", "note"]
    pubtator = records(out)[2]
    assert pubtator["metadata"] == {"pubtator_title_length": len("Aspirin causes ulcers.")}


def test_every_registry_format_is_an_input(tmp_path):
    """Inputs come from medner.io.iter_documents: Parquet and BioC too, streamed in order."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["fever", "malaria"]}), parquet)
    out = tmp_path / "out.jsonl"
    result = extract_to_file(FakeModel(), [parquet, FIXTURES / "small.bioc.xml"], out,
                             batch_size=1, progress=False)
    assert ids_of(out) == ["p1", "p2", "300", "301"]
    assert result.documents == 4


def test_repeated_ids_get_unique_deterministic_keys(tmp_path):
    a = make_corpus(tmp_path / "a.jsonl", 3)
    b = make_corpus(tmp_path / "b.jsonl", 2)  # d0, d1 again
    out = tmp_path / "out.jsonl"
    result = extract_to_file(FakeModel(), [a, b, a], out, progress=False)
    assert ids_of(out) == ["d0", "d1", "d2", "d0#2", "d1#2", "d0#3", "d1#3", "d2#2"]
    assert result.renamed_ids == 5
    assert any("repeated input id" in note for note in result.notes)
    assert records(out)[3]["metadata"][SOURCE_ID] == "d0"
    # An input id that looks like a generated key does not collide with one.
    c = tmp_path / "c.jsonl"
    write_corpus([Document("x", "a"), Document("x", "b"), Document("x#2", "c")], c, "jsonl")
    extract_to_file(FakeModel(), [c], out, progress=False)
    assert ids_of(out) == ["x", "x#2", "x#2#2"]


@pytest.mark.parametrize("fmt", ["pubtator", "brat"])
def test_pubtator_and_brat_output_round_trip_through_the_readers(tmp_path, fmt):
    src = make_corpus(tmp_path / "in.jsonl", 5)
    pub = FIXTURES / "small.pubtator.txt"
    ref = tmp_path / "ref.jsonl"
    extract_to_file(FakeModel(), [src, pub], ref, progress=False)
    out = tmp_path / ("out.pubtator" if fmt == "pubtator" else "out_brat")
    result = extract_to_file(FakeModel(), [src, pub], out, output_format=fmt, batch_size=2,
                             progress=False)
    assert result.documents == 7
    assert not journal_path(out, fmt).exists()
    back = read_corpus(out, fmt).documents
    expected = read_corpus(ref).documents
    assert sorted(d.id for d in back) == sorted(d.id for d in expected)
    by_id = {d.id: d for d in back}
    for doc in expected:
        got = by_id[doc.id]
        # PubTator writes a text without a title/abstract split as the title, then reads
        # it back as title + " " + (empty) abstract.
        assert got.text in (doc.text, doc.text + " ") if fmt == "pubtator" else \
            got.text == doc.text
        assert [(s.start, s.end, s.label, s.text) for s in got.spans] == \
            [(s.start, s.end, s.label, s.text) for s in doc.spans]


def test_pubtator_input_to_pubtator_output_keeps_title_and_abstract(tmp_path):
    out = tmp_path / "out.pubtator"
    extract_to_file(FakeModel(), [FIXTURES / "small.pubtator.txt"], out,
                    output_format="pubtator", progress=False)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("100|t|Aspirin causes ulcers.\n100|a|Gastric and duodenal")
    assert "\tCID\t" not in text  # gold relations are not predictions
    assert [d.text for d in read_corpus(out).documents] == \
        [d.text for d in read_corpus(FIXTURES / "small.pubtator.txt").documents]


def test_bad_arguments(tmp_path):
    src = make_corpus(tmp_path / "in.jsonl", 1)
    with pytest.raises(MednerError, match="output format"):
        extract_to_file(FakeModel(), [src], tmp_path / "o", output_format="conll")
    with pytest.raises(MednerError, match="must not be one of the inputs"):
        extract_to_file(FakeModel(), [src], src, progress=False)
    with pytest.raises(MednerError, match="unknown format 'xml'"):
        extract_to_file(FakeModel(), [src], tmp_path / "o.jsonl", input_format="xml")
    with pytest.raises(FormatError, match="no such file"):
        extract_to_file(FakeModel(), [tmp_path / "missing.jsonl"], tmp_path / "o.jsonl")


def test_progress_bar_shows_docs_per_second(tmp_path, capsys):
    src = make_corpus(tmp_path / "in.jsonl", 4)
    extract_to_file(FakeModel(), [src], tmp_path / "o.jsonl", batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "docs/s" in err and "4/4" in err


# --- interruption and resume -----------------------------------------------------------------


def test_resume_after_a_torn_last_line(tmp_path):
    src = make_corpus(tmp_path / "in.jsonl", 12)
    out = tmp_path / "out.jsonl"
    extract_to_file(FakeModel(), [src], out, batch_size=5, progress=False)
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    # The run died while writing record 8: 7 whole records and half of the 8th.
    out.write_bytes(b"".join(lines[:7]) + lines[7][: len(lines[7]) // 2])
    model = FakeModel()
    result = extract_to_file(model, [src], out, resume=True, batch_size=5, progress=False)
    assert result.torn_lines == 1
    assert (result.skipped, result.extracted, result.documents) == (7, 5, 12)
    assert model.predicted == [f"d{i}" for i in range(7, 12)]
    assert ids_of(out) == [f"d{i}" for i in range(12)]
    assert out.read_bytes() == full


def test_resume_cuts_a_complete_but_broken_last_line(tmp_path):
    src = make_corpus(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    extract_to_file(FakeModel(), [src], out, progress=False)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + b"\x00\x00\x00\n")  # what a power cut can leave
    result = extract_to_file(FakeModel(), [src], out, resume=True, progress=False)
    assert (result.torn_lines, result.skipped, result.extracted) == (1, 2, 2)
    assert ids_of(out) == ["d0", "d1", "d2", "d3"]


def test_interrupted_run_then_resume_gives_each_record_once(tmp_path):
    a = make_corpus(tmp_path / "a.jsonl", 9)
    b = make_corpus(tmp_path / "b.jsonl", 4)  # repeats d0..d3
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(FakeModel(crash_after=2), [a, b], out, batch_size=3, progress=False)
    assert ids_of(out) == [f"d{i}" for i in range(6)]
    result = extract_to_file(FakeModel(), [a, b], out, resume=True, batch_size=3,
                             progress=False)
    expected = [f"d{i}" for i in range(9)] + [f"d{i}#2" for i in range(4)]
    assert ids_of(out) == expected
    assert (result.skipped, result.extracted) == (6, 7)
    # Resuming a finished run does nothing.
    again = extract_to_file(FakeModel(), [a, b], out, resume=True, progress=False)
    assert (again.skipped, again.extracted) == (13, 0)
    assert ids_of(out) == expected


@pytest.mark.parametrize("fmt", ["pubtator", "brat"])
def test_interrupted_pubtator_or_brat_run_resumes_from_the_journal(tmp_path, fmt):
    src = make_corpus(tmp_path / "in.jsonl", 10)
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(FakeModel(crash_after=1), [src], out, output_format=fmt, batch_size=4,
                        progress=False)
    assert not out.exists()  # nothing half-written where the output goes
    journal = journal_path(out, fmt)
    assert ids_of(journal) == ["d0", "d1", "d2", "d3"]
    result = extract_to_file(FakeModel(), [src], out, output_format=fmt, resume=True,
                             batch_size=4, progress=False)
    assert (result.skipped, result.extracted) == (4, 6)
    assert not journal.exists()
    assert sorted(d.id for d in read_corpus(out, fmt).documents) == \
        sorted(f"d{i}" for i in range(10))


def test_without_resume_the_output_starts_over(tmp_path):
    out = tmp_path / "out.jsonl"
    extract_to_file(FakeModel(), [make_corpus(tmp_path / "a.jsonl", 3)], out, progress=False)
    extract_to_file(FakeModel(), [make_corpus(tmp_path / "b.jsonl", 2, start=50)], out,
                    progress=False)
    assert ids_of(out) == ["d50", "d51"]


def test_resume_refuses_a_file_that_is_not_a_journal(tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text("my precious notes\nmore notes\n", encoding="utf-8")
    with pytest.raises(MednerError, match="not a medner JSON Lines record"):
        extract_to_file(FakeModel(), [make_corpus(tmp_path / "a.jsonl", 2)], out, resume=True,
                        progress=False)
    assert out.read_text(encoding="utf-8") == "my precious notes\nmore notes\n"


def test_resume_counts_records_no_input_produced(tmp_path):
    out = tmp_path / "out.jsonl"
    extract_to_file(FakeModel(), [make_corpus(tmp_path / "a.jsonl", 3)], out, progress=False)
    result = extract_to_file(FakeModel(), [make_corpus(tmp_path / "b.jsonl", 2)], out,
                             resume=True, progress=False)
    assert result.unknown_records == 1  # d2 is not in b.jsonl
    assert any("match no input document" in note for note in result.notes)


def test_a_second_writer_is_refused(tmp_path):
    path = tmp_path / "out.jsonl"
    with open_journal(path, resume=False):
        with pytest.raises(MednerError, match="another running extraction"):
            with open_journal(path, resume=True):
                pass


def test_kill_9_in_the_middle_then_resume(tmp_path):
    """A real ``kill -9`` of a process that is writing; the rerun completes the file."""
    n = 60
    src = make_corpus(tmp_path / "in.jsonl", n)
    out = tmp_path / "out.jsonl"
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_batch import FakeModel
        from medner.batch import extract_to_file

        class Slow(FakeModel):
            def predict(self, documents, progress=False):
                time.sleep(0.05)
                return super().predict(documents)

        extract_to_file(Slow(), [{str(src)!r}], {str(out)!r}, batch_size=2, progress=False)
    """), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 10:
                break
            if proc.poll() is not None:
                pytest.fail(f"worker ended early: {proc.stderr.read().decode()}")
            time.sleep(0.01)
        else:
            pytest.fail("the worker wrote nothing within 60 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(out.read_bytes().splitlines())
    assert 10 <= done_before < n
    result = extract_to_file(FakeModel(), [src], out, resume=True, progress=False)
    assert result.skipped + result.extracted == n
    assert ids_of(out) == [f"d{i}" for i in range(n)]


def test_real_tiny_model_to_every_format(tmp_path_factory, tmp_path):
    from test_serve_support import TRAIN_DOCS, tiny_model

    from medner.backends import load

    model = load(tiny_model(tmp_path_factory))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n"
                           for d in TRAIN_DOCS), encoding="utf-8")
    for fmt, name in (("jsonl", "o.jsonl"), ("pubtator", "o.pubtator"), ("brat", "o_brat")):
        extract_to_file(model, [src], tmp_path / name, output_format=fmt, progress=False)
        docs = {d.id: d for d in read_corpus(tmp_path / name, fmt).documents}
        for raw in TRAIN_DOCS:
            assert [(s.start, s.end, s.label) for s in docs[raw["id"]].spans] == \
                [(s["start"], s["end"], s["label"]) for s in raw["spans"]]


def test_ids_pubtator_cannot_hold_fail_before_any_work(tmp_path):
    src = tmp_path / "in.jsonl"
    write_corpus([Document("ok", "fever"), Document("a|b", "fever")], src, "jsonl")
    model = FakeModel()
    with pytest.raises(MednerError, match="cannot be a PubTator PMID"):
        extract_to_file(model, [src], tmp_path / "o.pubtator", output_format="pubtator",
                        batch_size=1, progress=False)
    assert model.calls <= 1


# --- resuming into an output written in another format ---------------------------------------


def test_output_format_on_disk(tmp_path):
    src = make_corpus(tmp_path / "in.jsonl", 2)
    for fmt in ("jsonl", "pubtator", "brat"):
        out = tmp_path / f"o_{fmt}"
        extract_to_file(FakeModel(), [src], out, output_format=fmt, progress=False)
        assert output_format_on_disk(out) == fmt
    samples = {"t.txt": ("# d0\nEntity: fever, Label: SYMPTOM\n", "text"),
               "t1.txt": ("Entity: fever, Label: SYMPTOM\n", "text"),
               "j.json": ('[\n  {\n    "id": "d0"', "json"),
               "torn.jsonl": ('{"id": "d0", "te', "jsonl"),
               "i.jsonl": ('{"prompt": "p", "completion": "c"}\n', "instruct"),
               "empty.jsonl": ("", None), "notes.txt": ("my notes\n", None)}
    for name, (content, fmt) in samples.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert output_format_on_disk(tmp_path / name) == fmt, name
    assert output_format_on_disk(tmp_path / "missing.jsonl") is None


@pytest.mark.parametrize("written, resumed", [("pubtator", "jsonl"), ("jsonl", "pubtator"),
                                              ("brat", "jsonl"), ("jsonl", "brat")])
def test_resume_refuses_an_output_of_another_format(tmp_path, written, resumed):
    src = make_corpus(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out"
    extract_to_file(FakeModel(), [src], out, output_format=written, progress=False)
    before = sorted((p.name, p.read_bytes()) for p in ([out] if out.is_file() else
                                                      out.iterdir()))
    model = FakeModel()
    with pytest.raises(MednerError, match=f"{out} holds {written}.*this run writes {resumed}"):
        extract_to_file(model, [src], out, output_format=resumed, resume=True, progress=False)
    assert model.calls == 0
    assert sorted((p.name, p.read_bytes()) for p in ([out] if out.is_file() else
                                                    out.iterdir())) == before
    assert resumed == "jsonl" or not journal_path(out, resumed).exists()


def test_resume_refuses_text_lines_in_a_jsonl_file(tmp_path):
    out = tmp_path / "entities.jsonl"
    out.write_text("# d0\nEntity: fever, Label: SYMPTOM\n", encoding="utf-8")
    with pytest.raises(MednerError, match=r"holds text \(Entity/Label lines\) output.*writes "
                       r"jsonl.*cannot be resumed.*without --resume"):
        extract_to_file(FakeModel(), [make_corpus(tmp_path / "a.jsonl", 2)], out, resume=True,
                        progress=False)
    assert out.read_text(encoding="utf-8") == "# d0\nEntity: fever, Label: SYMPTOM\n"


def test_resume_as_jsonl_refuses_the_journal_of_an_interrupted_pubtator_run(tmp_path):
    src = make_corpus(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.pubtator"
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(FakeModel(crash_after=1), [src], out, output_format="pubtator",
                        batch_size=4, progress=False)
    journal = journal_path(out, "pubtator")
    with pytest.raises(MednerError, match="journal of an interrupted pubtator or brat run"):
        extract_to_file(FakeModel(), [src], out, output_format="jsonl", resume=True,
                        progress=False)
    assert not out.exists() and ids_of(journal) == ["d0", "d1", "d2", "d3"]


def test_a_matching_journal_resumes_over_a_stale_output_of_another_format(tmp_path):
    """The journal is what a pubtator run appends to; the old output is replaced at the end."""
    src = make_corpus(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.pubtator"
    extract_to_file(FakeModel(), [src], out, output_format="jsonl", progress=False)
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(FakeModel(crash_after=1), [src], out, output_format="pubtator",
                        batch_size=4, progress=False)
    result = extract_to_file(FakeModel(), [src], out, output_format="pubtator", resume=True,
                             batch_size=4, progress=False)
    assert (result.skipped, result.extracted) == (4, 6)
    assert output_format_on_disk(out) == "pubtator"


def test_a_folder_is_only_a_brat_output(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(MednerError, match="is a folder; jsonl output is a file"):
        extract_to_file(FakeModel(), [make_corpus(tmp_path / "a.jsonl", 2)], tmp_path / "folder",
                        progress=False)
