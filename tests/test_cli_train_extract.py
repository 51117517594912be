"""``medner train`` and ``medner extract`` in-process (typer's CliRunner), tiny model only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medner.backends.encoder.tiny import save_tiny_base
from medner.cli import extract as extract_cli
from medner.cli import train as train_cli
from medner.document import Document, Span
from medner.errors import ConfigError, MednerError
from medner.io import read_corpus, write_corpus

pytest.importorskip("torch")

TEXT = "she was suffering from Malaria and fever so she used amodiaquine"


def make_app() -> typer.Typer:
    app = typer.Typer()
    train_cli.register(app)
    extract_cli.register(app)
    return app


def gold() -> list[Document]:
    def sp(text: str, mention: str, label: str) -> Span:
        i = text.index(mention)
        return Span(i, i + len(mention), label, mention)

    other = "pain on hip after a fall"
    return [Document("a", TEXT, (sp(TEXT, "Malaria", "DISEASE"), sp(TEXT, "fever", "SYMPTOM"),
                                 sp(TEXT, "amodiaquine", "DRUG"))),
            Document("b", other, (sp(other, "pain", "SYMPTOM"), sp(other, "hip", "BODY_PART")))]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    base = save_tiny_base(root / "base", [d.text for d in gold()])
    data = root / "train.jsonl"
    write_corpus(gold(), data, "jsonl")
    config = root / "c.toml"
    config.write_text('[train]\nepochs = 1\nlearning_rate = 5e-3\nwarmup = 0\nbatch_size = 2\n'
                      'max_length = 32\npredict_max_length = 32\nstride = 4\nbf16 = false\n')
    out = root / "model"
    result = CliRunner().invoke(make_app(), [
        "train", "--config", str(config), "--train", str(data), "--dev", str(data),
        "--base-model", str(base), "--out", str(out), "--max-steps", "80", "--seed", "3",
        "--patience", "0", "--eval-steps", "40"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    meta = json.loads((out / "medner.json").read_text())
    assert meta["training_config"]["max_steps"] == 80  # flag beat the file
    assert meta["training_config"]["learning_rate"] == 5e-3  # file beat the default
    return out


def test_extract_prints_entity_lines(model_dir: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), TEXT])
    assert result.exit_code == 0, result.output
    assert "Entity: Malaria, Label: DISEASE" in result.output.splitlines()
    assert "Entity: amodiaquine, Label: DRUG" in result.output.splitlines()


def test_extract_json_has_offsets_and_scores(model_dir: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), TEXT, "-f", "json"])
    (doc,) = json.loads(result.output)
    span = next(s for s in doc["spans"] if s["text"] == "Malaria")
    assert TEXT[span["start"]:span["end"]] == "Malaria" and 0 < span["score"] <= 1


def test_extract_from_stdin_one_document_per_line(model_dir: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), "-f", "jsonl"],
                                input=TEXT + "\n\npain on hip after a fall\n")
    docs = [json.loads(line) for line in result.output.splitlines()]
    assert [d["text"] for d in docs] == [TEXT, "pain on hip after a fall"]


def test_extract_files_txt_and_corpus(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text(TEXT + "\n")
    corpus = tmp_path / "in.jsonl"
    write_corpus(gold(), corpus, "jsonl")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(make_app(), [
        "extract", str(model_dir), "--input", str(tmp_path / "note.txt"), "--input",
        str(corpus), "--format", "jsonl", "--output", str(out)])
    assert result.exit_code == 0, result.output
    docs = read_corpus(out).documents
    assert [d.id for d in docs] == ["note", "a", "b"]
    assert any(s.text == "Malaria" for s in docs[0].spans)


def test_extract_output_resumes_after_a_torn_write(model_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "in.jsonl"
    write_corpus(gold(), corpus, "jsonl")
    out = tmp_path / "out.jsonl"
    args = ["extract", str(model_dir), "--input", str(corpus), "--format", "jsonl",
            "--output", str(out)]
    assert CliRunner().invoke(make_app(), args).exit_code == 0
    first, _ = out.read_text().splitlines()
    out.write_text(first + "\n" + '{"id": "b", "te')  # a run killed mid-record
    result = CliRunner().invoke(make_app(), [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert [d.id for d in read_corpus(out).documents] == ["a", "b"]
    assert out.read_text().splitlines()[0] == first


def test_resume_without_streamed_output_is_refused(model_dir: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), TEXT, "--resume"])
    assert isinstance(result.exception, MednerError)


def test_extract_brat_needs_an_output_folder(model_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), TEXT, "-f", "brat"])
    assert isinstance(result.exception, MednerError)
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), TEXT, "-f", "brat",
                                             "-o", str(tmp_path / "brat")])
    assert result.exit_code == 0, repr(result.exception)
    assert any(p.suffix == ".ann" for p in (tmp_path / "brat").iterdir())


def test_extract_empty_text_gives_nothing(model_dir: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), ""])
    assert result.exit_code == 0 and result.output == ""


def test_extract_missing_model_file_is_named(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "m"
    shutil.copytree(model_dir, broken)
    (broken / "config.json").unlink()
    result = CliRunner().invoke(make_app(), ["extract", str(broken), TEXT])
    assert isinstance(result.exception, MednerError) and "config.json" in str(result.exception)


def test_train_rejects_unknown_backend_and_bad_values() -> None:
    result = CliRunner().invoke(make_app(), ["train", "--backend", "hosted"])
    assert isinstance(result.exception, ConfigError)
    result = CliRunner().invoke(make_app(), ["train", "--scheme", "IOB"])
    assert isinstance(result.exception, ConfigError) and "scheme" in str(result.exception)


def test_train_help_lists_config_fields() -> None:
    result = CliRunner().invoke(make_app(), ["train", "--help"], terminal_width=200)
    for flag in ("--base-model", "--split-seed", "--report-to", "--resume", "--scheme"):
        assert flag in result.output
    for removed in ("--crf", "--teacher"):
        assert removed not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crf"], "--crf was removed"),
        (["--no-crf"], "--crf was removed"),
        (["--teacher", "runs/ens", "--teacher-weight", "0.3"],
         "--teacher and --teacher-weight were removed: knowledge distillation gave no gain"),
    ],
)
def test_train_refuses_a_removed_flag_with_the_reason(args: list[str], message: str) -> None:
    result = CliRunner().invoke(make_app(), ["train", *args])
    assert isinstance(result.exception, ConfigError), result.output
    assert message in str(result.exception) and "docs/benchmarks.md" in str(result.exception)


def test_extract_refuses_llm_options_for_an_encoder_folder(model_dir: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), "--constrained", TEXT])
    assert isinstance(result.exception, MednerError)
    assert "--constrained" in str(result.exception) and "encoder" in str(result.exception)
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), "--repeat-patience", "2",
                                             TEXT])
    assert isinstance(result.exception, MednerError)
    assert "--repeat-patience" in str(result.exception)


def test_abbreviations_option_propagates_a_tagged_long_form(model_dir: Path) -> None:
    from medner.abbreviations import propagate_all
    from medner.backends import load

    text = "she was suffering from Malaria (ML) and fits; ML came back with fever"
    docs = [Document("m", text)]
    plain = load(model_dir, abbreviations=False).predict(docs)
    assert "Malaria" in [s.text for s in plain[0].spans]
    assert [s.text for s in plain[0].spans].count("ML") < 2  # the tiny model misses one
    with_abbreviations = load(model_dir, abbreviations=True).predict(docs)
    assert with_abbreviations == propagate_all(plain)
    # both uses get the long form's label: the untagged one is tagged, the other relabelled
    assert [(s.text, s.label) for s in with_abbreviations[0].spans
            if s.text == "ML"] == [("ML", "DISEASE")] * 2
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), "--abbreviations", text])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert result.output.count("Entity: ML, Label: DISEASE") == 2


# --- the output format follows --output's name unless --format is given ----------------------


@pytest.mark.parametrize("name, fmt", [
    ("entities.jsonl", "jsonl"), ("entities.json", "json"), ("entities.pubtator", "pubtator"),
    ("CDR_Test.PubTator.txt", "pubtator"), ("entities.txt", "text"), ("entities", "text"),
    ("entities.out", "text"),
])
def test_output_format_from_name(tmp_path: Path, name: str, fmt: str) -> None:
    assert extract_cli.choose_output_format(None, tmp_path / name) == fmt
    assert extract_cli.choose_output_format(None, None) == "text"
    (tmp_path / "folder").mkdir()
    assert extract_cli.choose_output_format(None, tmp_path / "folder") == "brat"


@pytest.mark.parametrize("name", ["out.xml", "out.conll", "out.ann"])
def test_an_output_name_of_a_format_extract_cannot_write_is_refused(tmp_path: Path,
                                                                    name: str) -> None:
    with pytest.raises(MednerError, match=name):
        extract_cli.choose_output_format(None, tmp_path / name)
    assert extract_cli.choose_output_format("jsonl", tmp_path / name) == "jsonl"


def batch_args(model_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    corpus = tmp_path / "abstracts.jsonl"
    if not corpus.exists():
        write_corpus(gold(), corpus, "jsonl")
    return ["extract", str(model_dir), "--input", str(corpus), *extra]


def test_batch_output_format_follows_the_extension(model_dir: Path, tmp_path: Path) -> None:
    """The README's own example: --output entities.jsonl writes JSON Lines, not text lines."""
    for name, fmt in (("entities.jsonl", "jsonl"), ("entities.pubtator", "pubtator"),
                      ("entities.PubTator.txt", "pubtator")):
        out = tmp_path / name
        result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out)))
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "warning" not in result.output
        corpus = read_corpus(out, fmt)
        assert [d.id for d in corpus.documents] == ["a", "b"], name
        assert any(s.text == "Malaria" for s in corpus.documents[0].spans), name
    first = json.loads((tmp_path / "entities.jsonl").read_text().splitlines()[0])
    assert first["id"] == "a" and first["text"] == TEXT
    assert (tmp_path / "entities.pubtator").read_text().startswith(f"a|t|{TEXT}\n")

    out = tmp_path / "entities.json"
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert [d["id"] for d in json.loads(out.read_text())] == ["a", "b"]

    brat = tmp_path / "brat_out"
    brat.mkdir()
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(brat)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert sorted(p.name for p in brat.iterdir()) == ["a.ann", "a.txt", "b.ann", "b.txt"]

    out = tmp_path / "entities.txt"
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Entity: Malaria, Label: DISEASE" in out.read_text().splitlines()


def test_text_lines_on_stdout_by_default(model_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    lines = result.stdout.splitlines()
    assert lines[0] == "# a" and "Entity: Malaria, Label: DISEASE" in lines


def test_explicit_format_wins_over_the_name_with_a_warning(model_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "entities.jsonl"
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out),
                                                       "--format", "pubtator"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "warning: writing pubtator into" in result.stderr and "says jsonl" in result.stderr
    assert [d.id for d in read_corpus(out, "pubtator").documents] == ["a", "b"]
    out = tmp_path / "entities.txt"  # .txt says nothing against another format: no warning
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out),
                                                       "--format", "jsonl"))
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "b"]


def test_resume_refuses_an_output_written_in_another_format(model_dir: Path, tmp_path: Path,
                                                            capsys) -> None:
    from medner.cli import main

    out = tmp_path / "entities.jsonl"
    # What the old default did: Entity/Label text lines in a .jsonl file.
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out),
                                                       "-f", "text"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    before = out.read_text()
    assert before.startswith("# a\nEntity: ")
    with pytest.raises(SystemExit) as exit_info:
        main(batch_args(model_dir, tmp_path, "-o", str(out), "--resume"))
    err = " ".join(capsys.readouterr().err.split())  # rich may wrap the line
    assert exit_info.value.code == 2
    assert f"{out} holds text (Entity/Label lines) output" in err
    assert "this run writes jsonl" in err
    assert out.read_text() == before

    # A pubtator output resumed as jsonl (--format given) is refused too, naming both.
    out = tmp_path / "entities.pubtator"
    assert CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o",
                                                     str(out))).exit_code == 0
    before = out.read_text()
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out),
                                                       "-f", "jsonl", "--resume"))
    assert isinstance(result.exception, MednerError)
    message = str(result.exception)
    assert "holds pubtator output" in message and "writes jsonl" in message
    assert "--format pubtator" in message
    assert out.read_text() == before
    # The matching format resumes (nothing left to do but rebuild the output).
    result = CliRunner().invoke(make_app(), batch_args(model_dir, tmp_path, "-o", str(out),
                                                       "--resume"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert out.read_text() == before


def test_the_device_rule_from_the_command_line(model_dir: Path, capsys,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--device auto (the default) runs where torch can; a CUDA device on a machine without
    one ends with one error line naming the folder, not a traceback."""
    from medner.cli import main
    from medner.core import device

    meta = json.loads((model_dir / "medner.json").read_text())
    assert (meta["precision"], meta["trained_on"]) == ("fp32", "cpu")  # the config's bf16=false
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    result = CliRunner().invoke(make_app(), ["extract", str(model_dir), TEXT, "--device", "auto"])
    assert result.exit_code == 0 and "Entity: Malaria, Label: DISEASE" in result.output
    for command in (["extract", str(model_dir), TEXT],
                    ["evaluate", str(model_dir), "--data", str(model_dir.parent / "train.jsonl")]):
        with pytest.raises(SystemExit) as stopped:
            main([*command, "--device", "cuda"])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"model folder {model_dir}: device 'cuda' asked for, but torch sees no CUDA GPU" \
               in " ".join(err.split()) and "Traceback" not in err


def test_evaluate_leaves_relations_unscored_for_a_model_without_a_relation_stage(
        model_dir: Path, tmp_path: Path, capsys) -> None:
    from dataclasses import replace

    from medner.cli import main
    from medner.document import Relation

    first, second = gold()
    spans = tuple(replace(s, id=f"T{k}") for k, s in enumerate(first.spans))
    related = replace(first, spans=spans, relations=(Relation("CID", "T2", "T0", args="span"),))
    data = tmp_path / "gold.jsonl"
    write_corpus([related, second], data, "jsonl")
    with pytest.raises(SystemExit) as done:
        main(["evaluate", str(model_dir), "--data", str(data), "--output-format", "json",
              "--bootstrap", "0"])
    assert done.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["relations"] is None  # not an F1 of 0 for a model never asked for them
    assert report["notes"] == {"gold relations not scored: the model has no relation stage": 1}
