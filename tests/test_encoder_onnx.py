"""ONNX export and the ONNX Runtime path of the encoder, on a tiny BERT trained in a fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medner.backends.encoder.tiny import save_tiny_base
from medner.cli import export_onnx as export_onnx_cli
from medner.cli import extract as extract_cli
from medner.cli import train as train_cli
from medner.document import Document, Span
from medner.errors import MednerError
from medner.io import write_corpus

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXT = "she was suffering from Malaria and fever so she used amodiaquine"
OTHER = "pain on hip after a fall"


def make_app() -> typer.Typer:
    app = typer.Typer()
    train_cli.register(app)
    extract_cli.register(app)
    export_onnx_cli.register(app)
    return app


def gold() -> list[Document]:
    def sp(text: str, mention: str, label: str) -> Span:
        i = text.index(mention)
        return Span(i, i + len(mention), label, mention)

    return [Document("a", TEXT, (sp(TEXT, "Malaria", "DISEASE"), sp(TEXT, "fever", "SYMPTOM"),
                                 sp(TEXT, "amodiaquine", "DRUG"))),
            Document("b", OTHER, (sp(OTHER, "pain", "SYMPTOM"), sp(OTHER, "hip", "BODY_PART")))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onnx")
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
        "--patience", "0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory) -> Path:
    """A copy of the trained folder with fp32 and int8 graphs written by the CLI."""
    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(trained, folder)
    result = CliRunner().invoke(make_app(), ["export-onnx", str(folder)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"wrote {folder / 'onnx' / 'model.int8.onnx'}" in result.output
    return folder


def spans(docs: list[Document]) -> list[list[tuple[int, int, str]]]:
    return [[(s.start, s.end, s.label) for s in d.spans] for d in docs]


def test_export_writes_graphs_and_a_record(exported: Path) -> None:
    onnx_folder = exported / "onnx"
    record = json.loads((onnx_folder / "export.json").read_text())
    assert sorted(record["files"]) == ["export.json", "model.int8.onnx", "model.onnx"]
    assert sorted(p.name for p in onnx_folder.iterdir()) == sorted(record["files"])
    assert record["int8"] is True and record["runtime_file"] == "model.int8.onnx"
    assert record["fp32_max_logit_diff"] < 1e-3
    assert not [p for p in exported.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_fp32_graph_predicts_the_same_spans_as_torch(trained: Path, tmp_path: Path) -> None:
    from medner.backends import load
    from medner.backends.encoder.onnx import export_onnx

    folder = tmp_path / "model"
    shutil.copytree(trained, folder)
    record = export_onnx(folder, int8=False)
    assert record["files"] == ["export.json", "model.onnx"] and record["int8"] is False
    texts = [TEXT, OTHER, " ".join([TEXT, OTHER] * 6)]  # the long one spans several windows
    torch_docs = load(folder, bf16=False).extract(texts)
    onnx_model = load(folder, runtime="onnx")
    assert onnx_model.runtime == "onnx" and onnx_model.model.file.name == "model.onnx"
    onnx_docs = onnx_model.extract(texts)
    assert spans(onnx_docs) == spans(torch_docs)
    assert any(spans(onnx_docs))
    for t, o in zip(torch_docs, onnx_docs, strict=True):
        for a, b in zip(t.spans, o.spans, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_int8_graph_loads_and_predicts(exported: Path) -> None:
    from medner.backends.encoder import load

    model = load(exported, runtime="onnx", threads=1)
    assert model.model.file.name == "model.int8.onnx"
    (doc,) = model.extract(TEXT)
    assert all(TEXT[s.start:s.end] == s.text for s in doc.spans)


def test_onnx_runtime_without_export_is_a_clear_error(trained: Path) -> None:
    from medner.backends import load

    with pytest.raises(MednerError, match="medner export-onnx"):
        load(trained, runtime="onnx")
    with pytest.raises(MednerError, match="choose one of torch, onnx"):
        load(trained, runtime="tensorrt")


def test_extract_cli_with_onnx_runtime(exported: Path) -> None:
    result = CliRunner().invoke(make_app(), ["extract", str(exported), "--runtime", "onnx",
                                             TEXT, "-f", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    (doc,) = json.loads(result.output)
    assert doc["text"] == TEXT
