"""Knowledge distillation: a student encoder trained on a teacher's word probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medner.backends import load
from medner.backends.encoder.config import EncoderConfig
from medner.errors import ConfigError
from tests.test_encoder_model import DOCS, keys, train_tiny

torch = pytest.importorskip("torch")


def test_the_collator_pads_teacher_rows_like_the_labels() -> None:
    from transformers import DataCollatorForTokenClassification

    from medner.backends.encoder.distill import TEACHER_PROBS, TeacherCollator

    features = [
        {"input_ids": [2, 4, 5, 3], "attention_mask": [1] * 4, "labels": [-100, 1, 0, -100],
         TEACHER_PROBS: np.array([[0, 0], [0.2, 0.8], [0.9, 0.1], [0, 0]], dtype=np.float32)},
        {"input_ids": [2, 4, 3], "attention_mask": [1] * 3, "labels": [-100, 1, -100],
         TEACHER_PROBS: np.array([[0, 0], [0.3, 0.7], [0, 0]], dtype=np.float32)},
    ]

    class PadOnly:
        pad_token_id = 0
        padding_side = "right"

        def pad(self, features, **kwargs):  # what DataCollatorForTokenClassification calls
            width = max(len(f["input_ids"]) for f in features)
            return {key: torch.tensor([f[key] + [0] * (width - len(f[key])) for f in features])
                    for key in ("input_ids", "attention_mask")}

    collator = TeacherCollator(
        DataCollatorForTokenClassification(PadOnly(), label_pad_token_id=-100), "right")
    batch = collator(features)
    assert batch["labels"].tolist() == [[-100, 1, 0, -100], [-100, 1, -100, -100]]
    probs = batch[TEACHER_PROBS]
    assert probs.shape == (2, 4, 2)
    assert probs[1, 1].tolist() == pytest.approx([0.3, 0.7]) and probs[1, 3].tolist() == [0, 0]
    assert TEACHER_PROBS in features[0]  # the dataset's own features are left as they were
    dev_batch = collator([{k: v for k, v in f.items() if k != TEACHER_PROBS} for f in features])
    assert TEACHER_PROBS not in dev_batch


def test_a_one_hot_teacher_gives_the_gold_loss_at_any_weight(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForTokenClassification, TrainingArguments

    from medner.backends.encoder.distill import TEACHER_PROBS, DistillationTrainer

    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3)).eval()  # no dropout: comparable losses
    labels = torch.tensor([[-100, 2, 0, 1, -100]])
    inputs = {"input_ids": torch.tensor([[1, 5, 6, 7, 2]]),
              "attention_mask": torch.ones((1, 5), dtype=torch.long), "labels": labels}
    one_hot = torch.nn.functional.one_hot(labels.clamp(min=0), 3).float()
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    with torch.no_grad():
        gold = model(**inputs).loss
        for weight in (0.0, 0.5, 1.0):
            trainer = DistillationTrainer(model=model, args=args, teacher_weight=weight)
            loss = trainer.compute_loss(model, {**inputs, TEACHER_PROBS: one_hot})
            assert float(loss) == pytest.approx(float(gold), rel=1e-5)
        # a teacher that disagrees moves the loss by its weight
        uniform = torch.full_like(one_hot, 1 / 3)
        half = DistillationTrainer(model=model, args=args, teacher_weight=0.5).compute_loss(
            model, {**inputs, TEACHER_PROBS: uniform})
        logprobs = torch.log_softmax(model(**inputs).logits, -1)[labels != -100]
        expected = 0.5 * gold + 0.5 * (-(logprobs.mean(-1))).mean()
        assert float(half) == pytest.approx(float(expected), rel=1e-5)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    return root, train_tiny(root, seed=1, out=str(root / "teacher"))


def test_a_student_learns_from_the_teacher_and_records_it(teacher) -> None:
    root, teacher_folder = teacher
    student = train_tiny(root, seed=2, out=str(root / "student"),
                         teacher=str(teacher_folder), teacher_weight=0.7)
    for gold, pred in zip(DOCS, load(student).predict(DOCS), strict=True):
        assert keys(pred) == keys(gold)
    meta = json.loads((student / "medner.json").read_text())
    assert meta["teacher"]["path"] == str(teacher_folder)
    assert meta["teacher"]["members"] == 1
    assert meta["teacher"]["dev_metrics"]["micro"]["f1"] == pytest.approx(1.0)
    assert meta["training_config"]["teacher_weight"] == 0.7
    from transformers import AutoModelForTokenClassification

    AutoModelForTokenClassification.from_pretrained(str(student))  # still a plain model


def test_a_teacher_with_other_tags_or_no_folder_is_refused(teacher, tmp_path) -> None:
    root, teacher_folder = teacher
    with pytest.raises(ConfigError, match="BILOU tags .* the student BIO|BIO tags .* BILOU"):
        train_tiny(root, out=str(tmp_path / "x"), scheme="BILOU", teacher=str(teacher_folder))
    with pytest.raises(ConfigError, match="teacher.*missing-folder"):
        train_tiny(root, out=str(tmp_path / "y"), teacher=str(tmp_path / "missing-folder"))
    with pytest.raises(ConfigError, match="teacher_weight"):
        EncoderConfig(teacher=str(teacher_folder), teacher_weight=1.5)
    with pytest.raises(ConfigError, match="crf"):
        EncoderConfig(teacher=str(teacher_folder), crf=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
