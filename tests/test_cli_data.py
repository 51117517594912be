"""The data commands, run in-process through the real entry point."""

import json

import pytest

from medner.cli import main
from medner.document import Document, Span
from medner.io import jsonl


def write_docs(path, docs):
    jsonl.write(docs, path)
    return path


@pytest.fixture
def corpus_file(tmp_path):
    docs = [
        Document(
            f"d{i}",
            f"Patient {i} had fever after aspirin.",
            (
                Span(len(f"Patient {i} had "), len(f"Patient {i} had fever"), "SYMPTOM", "fever"),
                Span(
                    len(f"Patient {i} had fever after "),
                    len(f"Patient {i} had fever after aspirin"),
                    "DRUG",
                    "aspirin",
                ),
            ),
        )
        for i in range(20)
    ]
    return write_docs(tmp_path / "corpus.jsonl", docs)


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_stats_json_counts_labels(corpus_file, capsys):
    code, out, _ = run(["data", "stats", str(corpus_file), "--json"], capsys)
    assert code == 0
    stats = json.loads(out)
    assert stats["documents"] == 20
    assert stats["spans"] == {"DRUG": 20, "SYMPTOM": 20}


def test_stats_with_schema_shows_mapped_counts(corpus_file, capsys):
    code, out, _ = run(
        ["data", "stats", str(corpus_file), "--labels", "clinical4", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out)["schema_spans"] == {
        "DISEASE": 0,
        "SYMPTOM": 20,
        "DRUG": 20,
        "BODY_PART": 0,
    }


def test_split_writes_three_parts_without_leak(corpus_file, tmp_path, capsys):
    out_dir = tmp_path / "parts"
    code, out, _ = run(
        ["data", "split", str(corpus_file), "-o", str(out_dir), "--seed", "1"], capsys
    )
    assert code == 0
    sizes = [
        len((out_dir / f"{name}.jsonl").read_text().splitlines())
        for name in ("train", "dev", "test")
    ]
    assert sizes == [16, 2, 2]
    assert "no shared ids or texts" in out
    code, out, _ = run(
        [
            "data",
            "check-leak",
            str(out_dir / "train.jsonl"),
            str(out_dir / "test.jsonl"),
            "--strict",
        ],
        capsys,
    )
    assert code == 0 and "no leak" in out


def test_check_leak_strict_fails_on_shared_documents(corpus_file, capsys):
    code, out, _ = run(
        ["data", "check-leak", str(corpus_file), str(corpus_file), "--strict", "--json"], capsys
    )
    assert code == 1
    assert json.loads(out)["distinct_texts_b_also_in_a"] == 20


def test_convert_round_trips_jsonl(corpus_file, tmp_path, capsys):
    target = tmp_path / "copy.jsonl"
    code, _, _ = run(["data", "convert", str(corpus_file), str(target)], capsys)
    assert code == 0
    assert target.read_text() == corpus_file.read_text()


def test_an_output_that_cannot_be_written_is_one_clear_error(corpus_file, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "copy.jsonl"  # a folder that is a file: cannot be made
    code, _, err = run(["data", "convert", str(corpus_file), str(target)], capsys)
    assert code == 2
    assert f"{target}: cannot write here" in err.replace("\n", "")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "content, where, message",
    [
        (
            '{"id": "a", "text": "fever"}\n'
            '{"id": "b", "text": "x", "spans": [{"start": 0, "end": 9, '
            '"label": "S", "text": "x"}]}\n',
            ":2:",
            "outside the document text",
        ),
        (
            '{"id": "a", "text": "fever", "spans": '
            '[{"start": 0, "end": 3, "label": "S", "text": "fox"}]}\n',
            ":1:",
            "does not match",
        ),
        ('{"id": "a", "text": "fever"\n', ":1:", "invalid JSON"),
        ("", "", "empty"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, capsys, content, where, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    code, out, err = run(["data", "stats", str(path), "--format", "jsonl"], capsys)
    assert code == 2
    assert str(path) + where in err.replace("\n", "")
    assert message in err.replace("\n", " ")
    assert "Traceback" not in err


def test_non_utf8_byte_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    code, _, err = run(["data", "stats", str(path)], capsys)
    assert code == 2 and f"{path}:2" in err.replace("\n", "") and "UTF-8" in err


def test_skip_policy_counts_skipped_mentions(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "a", "text": "fever", "spans": [{"start": 0, "end": 3, "label": "S", '
        '"text": "fox"}, {"start": 0, "end": 5, "label": "S", "text": "fever"}]}\n'
    )
    code, out, _ = run(["data", "stats", str(path), "--on-mismatch", "skip", "--json"], capsys)
    stats = json.loads(out)
    assert code == 0
    assert stats["spans"] == {"S": 1}
    assert stats["read_report"] == {"skipped: mention/offset mismatch": 1}


def test_check_leak_writes_a_clean_copy_without_abstracts_of_the_dev_set(tmp_path, capsys):
    """The tutorials' records hold abstracts without titles; BC5CDR dev has title + abstract."""
    from medner.io import read_corpus, write_corpus

    def abstract(drug):
        text = (f"{drug} was given to 40 patients with chronic pain. Seizures were seen in two "
                f"of them, and hypotension in five. We discuss whether {drug} or the dose "
                "schedule explains these adverse events in elderly patients.")
        return Document(drug, text, (Span(0, len(drug), "Chemical", drug),))

    train = [abstract("Lidocaine"), abstract("Morphine")]
    write_corpus(train, tmp_path / "train.jsonl", "instruct")
    titled = Document("123", "Lidocaine and seizures. " + train[0].text)
    write_corpus([titled], tmp_path / "dev.pubtator", "pubtator")
    code, out, _ = run(["data", "check-leak", str(tmp_path / "train.jsonl"),
                        str(tmp_path / "dev.pubtator"), "--write-clean",
                        str(tmp_path / "clean.jsonl")], capsys)
    words = " ".join(out.split())  # rich wraps long lines
    assert code == 0 and "LEAK" in words and "1 of 2 documents of A (instruct)" in words
    (kept,) = read_corpus(tmp_path / "clean.jsonl", "instruct").documents
    assert "Morphine was given" in kept.text
