"""Ensembles of encoders: averaging, the folder, its checks, and ``medner ensemble``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from medner.backends import load
from medner.backends.encoder.ensemble import build_ensemble
from medner.backends.encoder.members import ensemble_logits
from medner.backends.encoder.onnx import export_onnx
from medner.backends.encoder.predict import log_softmax
from medner.cli import ensemble as ensemble_cli
from medner.errors import MednerError
from tests.test_encoder_model import DOCS, keys, train_tiny

pytest.importorskip("torch")


def test_ensemble_logits_are_the_log_of_the_mean_probabilities() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
    combined = ensemble_logits([lambda ids, mask: a, lambda ids, mask: b])(None, None)
    expected = np.log((np.exp(log_softmax(a)) + np.exp(log_softmax(b))) / 2)
    assert np.allclose(combined, expected, atol=1e-5)
    assert np.allclose(np.exp(combined).sum(-1), 1.0, atol=1e-5)  # already normalised


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two tiny encoders of one recipe, seeds 1 and 2, and their training data."""
    root = tmp_path_factory.mktemp("ensemble")
    first = train_tiny(root, seed=1, out=str(root / "seed1"))
    second = train_tiny(root, seed=2, out=str(root / "seed2"))
    return first, second, root / "train.jsonl"


def test_an_ensemble_folder_averages_its_members(members, tmp_path: Path) -> None:
    first, second, _ = members
    folder = build_ensemble([first, second], tmp_path / "ens", log=lambda _: None)
    assert (folder / "members" / "1" / "model.safetensors").is_file()
    meta = json.loads((folder / "medner.json").read_text())
    assert [s["seed"] for s in meta["ensemble"]["sources"]] == [1, 2]
    assert "ensemble of 2" in (folder / "README.md").read_text()

    model = load(folder)
    assert len(model.members) == 1
    for gold, pred in zip(DOCS, model.predict(DOCS), strict=True):
        assert keys(pred) == keys(gold)
    # the ensemble's scores are the mean of the members' word probabilities
    single = [load(first), load(second)]
    text = [DOCS[0].text]
    member_scores = [[s.score for s in m.extract(text)[0].spans] for m in single]
    ensemble_scores = [s.score for s in model.extract(text)[0].spans]
    assert ensemble_scores != member_scores[0]
    assert min(map(min, member_scores)) - 1e-6 <= min(ensemble_scores)
    assert max(ensemble_scores) <= max(map(max, member_scores)) + 1e-6


def test_the_ensemble_folder_loads_in_a_plain_pipeline_as_its_first_member(members,
                                                                           tmp_path) -> None:
    from transformers import pipeline

    folder = build_ensemble(members[:2], tmp_path / "ens", log=lambda _: None)
    assert isinstance(pipeline("token-classification", model=str(folder), device="cpu")(
        "she used amodiaquine"), list)


def test_members_must_agree_and_be_complete(members, tmp_path: Path) -> None:
    first, second, _ = members
    with pytest.raises(MednerError, match="at least two"):
        build_ensemble([first], tmp_path / "one")
    odd = tmp_path / "odd"
    shutil.copytree(second, odd)
    meta = json.loads((odd / "medner.json").read_text())
    meta["scheme"] = "BILOU"
    (odd / "medner.json").write_text(json.dumps(meta))
    with pytest.raises(MednerError, match="scheme"):
        build_ensemble([first, odd], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    meta["scheme"], meta["inference"]["transitions"] = "BIO", {"start": [0.0]}
    (odd / "medner.json").write_text(json.dumps(meta))
    with pytest.raises(MednerError, match="CRF"):
        build_ensemble([first, odd], tmp_path / "bad")

    folder = build_ensemble([first, second], tmp_path / "ens", log=lambda _: None)
    (folder / "members" / "1" / "model.safetensors").unlink()
    with pytest.raises(MednerError, match=r"members/1 is missing model\.safetensors"):
        load(folder)
    with pytest.raises(MednerError, match="ensemble"):
        export_onnx(folder)


def test_the_cli_writes_the_ensemble_with_its_dev_metrics(members, tmp_path: Path) -> None:
    first, second, data = members
    app = typer.Typer()
    ensemble_cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `ensemble` a sub-command
    out = tmp_path / "ens"
    result = CliRunner().invoke(app, ["ensemble", str(first), str(second), "--out", str(out),
                                      "--dev", str(data)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "dev strict micro F1 100.00" in result.output
    meta = json.loads((out / "medner.json").read_text())
    assert meta["dev_metrics"]["micro"]["f1"] == pytest.approx(1.0)
    assert meta["data"]["dev_documents"] == len(DOCS)
