"""Adversarial training (FGM) on the word embeddings of a tiny encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medner.backends import load
from medner.backends.encoder.config import EncoderConfig
from medner.errors import ConfigError
from tests.test_encoder_model import DOCS, keys, train_tiny

torch = pytest.importorskip("torch")


def tiny_model():
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    return BertForTokenClassification(BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, classifier_dropout=0.0))


def test_a_step_adds_the_gradient_at_the_shifted_embeddings_and_restores_them(tmp_path) -> None:
    from transformers import Trainer, TrainingArguments

    from medner.backends.encoder.adversarial import with_adversarial

    model = tiny_model()
    inputs = {"input_ids": torch.tensor([[1, 5, 6, 7, 2]]),
              "attention_mask": torch.ones((1, 5), dtype=torch.long),
              "labels": torch.tensor([[-100, 2, 0, 1, -100]])}
    embeddings = model.get_input_embeddings().weight
    before = embeddings.detach().clone()

    # the expected gradient, by hand: the clean one plus the one at the shifted embeddings
    model.zero_grad()
    model(**inputs).loss.backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters()}
    shift = 0.5 * clean["bert.embeddings.word_embeddings.weight"] / torch.linalg.vector_norm(
        clean["bert.embeddings.word_embeddings.weight"])
    model.zero_grad()
    with torch.no_grad():
        embeddings.add_(shift)
    model(**inputs).loss.backward()
    with torch.no_grad():
        embeddings.copy_(before)
    expected = {n: clean[n] + p.grad for n, p in model.named_parameters()}

    model.zero_grad()
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = with_adversarial(Trainer, 0.5)(model=model, args=args)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop
    trainer.training_step(model, dict(inputs))
    assert torch.equal(embeddings.detach(), before)
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, expected[name], atol=1e-6), name


def test_a_tiny_adversarial_run_overfits_and_records_epsilon(tmp_path: Path) -> None:
    model = train_tiny(tmp_path, adversarial_epsilon=0.1)
    for gold, pred in zip(DOCS, load(model).predict(DOCS), strict=True):
        assert keys(pred) == keys(gold)
    meta = json.loads((model / "medner.json").read_text())
    assert meta["training_config"]["adversarial_epsilon"] == 0.1
    assert "adversarial training (FGM) on the word embeddings, epsilon 0.1" in (
        model / "README.md").read_text()


def test_a_negative_epsilon_is_refused() -> None:
    with pytest.raises(ConfigError, match="adversarial_epsilon"):
        EncoderConfig(adversarial_epsilon=-1.0)
