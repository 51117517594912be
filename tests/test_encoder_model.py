"""Overfit-then-reload with a tiny encoder built in code, plus the model folder's contracts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medner.backends import load
from medner.backends.encoder.config import EncoderConfig
from medner.backends.encoder.tiny import save_tiny_base
from medner.core.folder import atomic_folder
from medner.document import Document, Span
from medner.errors import MednerError
from medner.io import write_corpus

pytest.importorskip("torch")


def doc(id_: str, text: str, *mentions: tuple[str, str]) -> Document:
    spans = []
    for mention, label in mentions:
        start = text.index(mention)
        spans.append(Span(start, start + len(mention), label, mention))
    return Document(id_, text, tuple(spans))


DOCS = [
    doc("a", "she was suffering from Malaria and fever so she used amodiaquine",
        ("Malaria", "DISEASE"), ("fever", "SYMPTOM"), ("amodiaquine", "DRUG")),
    doc("b", "pain on hip after a fall , no signs cerebral malaria seen today .",
        ("pain", "SYMPTOM"), ("hip", "BODY_PART"), ("cerebral malaria", "DISEASE")),
]


WINDOW = 12


def keys(d: Document) -> set[tuple[int, int, str]]:
    return {s.key() for s in d.spans}


def train_tiny(root: Path, **overrides) -> Path:
    """Train a 2-layer 32-dim BERT on DOCS until the loss is tiny; the model folder.

    Windows of 12 tokens (10 without [CLS]/[SEP]) cut both documents, so training and
    prediction go through overlapping windows and entities that cross their borders.
    ``overrides`` change the config (another seed, the CRF, ...).
    """
    from medner.backends.encoder.train import train

    base = root / "base"
    if not base.exists():
        save_tiny_base(base, [d.text for d in DOCS] + ["filler text ."])
    data = root / "train.jsonl"
    write_corpus(DOCS, data, "jsonl")
    settings = {"max_steps": 120, "batch_size": 8, "learning_rate": 5e-3, "warmup": 0.0,
                "patience": 0, "max_length": WINDOW, "stride": 4, "predict_max_length": WINDOW,
                "bf16": False, "seed": 1, "eval_steps": 60, "out": str(root / "model"),
                **overrides}
    config = EncoderConfig(train=str(data), dev=str(data), base_model=str(base), **settings)
    result = train(config, log=lambda _: None, progress=False)
    assert result.meta["train_loss"] < 0.3
    return result.path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("tiny"))


def test_overfit_then_reload_predicts_the_same_spans(trained: Path) -> None:
    model = load(trained)
    predicted = model.predict(DOCS)
    for gold, pred in zip(DOCS, predicted, strict=True):
        assert pred.id == gold.id and pred.text == gold.text
        assert keys(pred) == keys(gold)
        assert all(0 < s.score <= 1 for s in pred.spans)
    meta = json.loads((trained / "medner.json").read_text())
    assert meta["dev_metrics"]["micro"]["f1"] == pytest.approx(1.0)
    assert meta["schema"]["labels"] == ["BODY_PART", "DISEASE", "DRUG", "SYMPTOM"]
    assert meta["data"]["train_fingerprint"] and meta["alignment"]["aligned"] == 6
    assert "micro" in (trained / "README.md").read_text()


def test_the_precision_switch_sets_the_load_default(trained: Path, monkeypatch) -> None:
    from medner.core.device import PRECISION_ENV

    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert load(trained).bf16 is True
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert load(trained).bf16 is False
    assert load(trained, bf16=True).bf16 is True  # an explicit choice wins


def test_bf16_load_casts_the_weights_once_and_predicts_the_same_spans(trained: Path) -> None:
    import torch

    full = load(trained, bf16=False)
    half = load(trained, bf16=True)
    assert next(full.model.parameters()).dtype == torch.float32
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert [keys(d) for d in half.predict(DOCS)] == [keys(d) for d in full.predict(DOCS)]


def test_extract_returns_documents(trained: Path) -> None:
    (out,) = load(trained).extract("she was suffering from Malaria and fever so she used "
                                   "amodiaquine")
    assert {(s.text, s.label) for s in out.spans} >= {("Malaria", "DISEASE"),
                                                      ("amodiaquine", "DRUG")}


def test_empty_and_blank_texts_give_no_entities(trained: Path) -> None:
    docs = load(trained).extract(["", "   \n "])
    assert [d.spans for d in docs] == [(), ()]


def test_entities_across_window_borders_are_merged_whole(trained: Path) -> None:
    from medner.backends.encoder.align import tokenize_document
    from medner.backends.encoder.windows import make_windows

    model = load(trained)
    tok = tokenize_document(model.tokenizer, DOCS[1].text)
    entity = next(s for s in DOCS[1].spans if s.text == "cerebral malaria")
    windows = make_windows(tok, model.max_length - 2, model.stride)
    ends = [tok.word_spans[tok.token_word[b - 1]][1] for _, b in windows]
    assert any(entity.start < end < entity.end for end in ends), "a border must cut it"
    (pred,) = model.predict([DOCS[1]])
    assert keys(pred) == keys(DOCS[1])


def test_a_1mb_text_is_processed_in_windows_to_the_end(trained: Path) -> None:
    model = load(trained, batch_size=256)
    tail = DOCS[0].text
    filler = "filler text . " * (1_000_000 // 14)
    (out,) = model.extract(filler + tail)
    assert len(filler + tail) > 1_000_000
    found = {(s.start - len(filler), s.end - len(filler), s.label) for s in out.spans
             if s.start >= len(filler)}
    assert keys(DOCS[0]) <= found


def test_folder_loads_in_a_plain_transformers_pipeline(trained: Path) -> None:
    from transformers import pipeline

    ner = pipeline("token-classification", model=str(trained), device="cpu")
    assert ner.model.config.id2label[0] == "O"
    assert isinstance(ner("she used amodiaquine"), list)


def test_a_folder_of_the_removed_crf_and_distillation_options_still_loads(
        trained: Path, tmp_path: Path) -> None:
    """Folders saved with ``crf = true`` (learned scores under ``inference.transitions``) or a
    ``teacher`` load, and their transition scores are still applied in decoding."""
    import numpy as np

    old = tmp_path / "old-crf"
    shutil.copytree(trained, old)
    meta = json.loads((old / "medner.json").read_text())
    n = len(meta["tags"])
    meta["training_config"].update(crf=True, teacher="runs/ens", teacher_weight=0.5)
    meta["teacher"] = {"path": "runs/ens", "members": 2, "dev_metrics": None}
    zeros = {"start": [0.0] * n, "transitions": np.zeros((n, n)).tolist(), "end": [0.0] * n}
    meta["inference"]["transitions"] = zeros
    (old / "medner.json").write_text(json.dumps(meta))
    model = load(old)
    for gold, pred in zip(DOCS, model.predict(DOCS), strict=True):
        assert keys(pred) == keys(gold)  # all-zero scores: the plain constrained decoding
    meta["inference"]["transitions"] = {**zeros, "start": [0.0] + [-1e4] * (n - 1)}
    (old / "medner.json").write_text(json.dumps(meta))
    model = load(old)
    assert model.decoder.start[1:].max() <= -1e4  # the saved scores are applied
    predicted = model.predict(DOCS)
    assert (0, 4, "SYMPTOM") in keys(DOCS[1]) and (0, 4, "SYMPTOM") not in keys(predicted[1])


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "medner.json"])
def test_missing_file_is_a_clear_error(trained: Path, tmp_path: Path, name: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / name).unlink()
    with pytest.raises(MednerError, match=name.replace(".", r"\.")):
        load(broken)


def test_device_option(trained: Path) -> None:
    import torch

    assert load(trained, device="cpu").model.device.type == "cpu"
    on = "cuda" if torch.cuda.is_available() else "cpu"
    assert load(trained).model.device.type == load(trained, device="auto").model.device.type == on
    with pytest.raises(MednerError, match="not a device"):
        load(trained, device="gpu0")
    with pytest.raises(MednerError, match="runs on the CPU"):
        load(trained, runtime="onnx", device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(MednerError, match="no CUDA GPU"):
            load(trained, device="cuda")


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MednerError, match="does not exist"):
        load(tmp_path / "nowhere")


def test_interrupted_save_leaves_no_folder(tmp_path: Path) -> None:
    def write(folder: Path) -> None:
        (folder / "medner.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_folder(tmp_path / "model", write)
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_an_existing_folder_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "model"
    atomic_folder(target, lambda f: (f / "a.txt").write_text("old"))
    with pytest.raises(RuntimeError):
        atomic_folder(target, lambda f: (_ for _ in ()).throw(RuntimeError("boom")))
    assert (target / "a.txt").read_text() == "old"
    atomic_folder(target, lambda f: (f / "b.txt").write_text("new"))
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert [p.name for p in target.iterdir()] == ["b.txt"]


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import importlib

    train_module = importlib.import_module("medner.backends.encoder.train")

    base = save_tiny_base(tmp_path / "base", [d.text for d in DOCS])
    data = tmp_path / "train.jsonl"
    write_corpus(DOCS, data, "jsonl")
    config = EncoderConfig(train=str(data), dev=str(data), base_model=str(base),
                           out=str(tmp_path / "model"), max_steps=6, eval_steps=3,
                           batch_size=8, max_length=WINDOW, stride=4, predict_max_length=WINDOW,
                           bf16=False, patience=0)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("medner.core.training.atomic_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(config, log=lambda _: None, progress=False)
    assert not (tmp_path / "model").exists()
    assert sorted(p.name for p in (tmp_path / "model.train").glob("checkpoint-*")) == [
        "checkpoint-3", "checkpoint-6"]
    monkeypatch.undo()
    messages: list[str] = []
    longer = EncoderConfig(**{**config.to_dict(), "report_to": (), "max_steps": 9,
                              "resume": True})
    result = train_module.train(longer, log=messages.append, progress=False)
    assert any("resuming from" in m and "checkpoint-6" in m for m in messages)
    assert result.meta["global_steps"] == 9
    assert not list((tmp_path / "model.train").glob("checkpoint-*"))
