"""Knowledge distillation (``teacher = FOLDER``): one encoder learns a teacher's word
probabilities as well as the gold tags.

A seed ensemble (``medner ensemble``) is more accurate than any of its members, but it runs
one forward pass per member at every prediction. The student is a single model: its loss
mixes cross-entropy on the gold tags with cross-entropy against the teacher's (averaged)
word probabilities on the same training windows, so it predicts at one model's cost.

The teacher's probabilities are computed once, before training, with the teacher's own
prediction path (``EncoderModel.logits_function``), on exactly the student's training
windows; the teacher must therefore share the student's tokenizer and tags.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import Trainer

from medner.backends.encoder.align import Tokenized
from medner.backends.encoder.predict import WindowItem, run_windows, word_positions
from medner.errors import ConfigError, MednerError

TEACHER_PROBS = "teacher_probs"
"""Feature and batch key of the teacher's word probabilities, (tokens, tags) per window."""


def attach_teacher(features: list[dict[str, Any]], teacher_path: str, tokenizer,
                   tags: Sequence[str], scheme: str, tokenized: Sequence[Tokenized],
                   items: Sequence[WindowItem], prefix: int, *, batch_size: int,
                   log: Callable[[str], None], progress: bool) -> dict[str, Any]:
    """Add the teacher's probabilities to each training feature (rows on the labelled
    sub-tokens, zeros elsewhere); returns what to record about the teacher."""
    from medner.backends.encoder.model import EncoderModel

    try:
        teacher = EncoderModel.load(teacher_path)
    except MednerError as exc:
        raise ConfigError(f"config field 'teacher': {exc}") from None
    if list(teacher.tags) != list(tags) or teacher.scheme != scheme:
        raise ConfigError(f"config field 'teacher': {teacher_path} predicts {teacher.scheme} "
                          f"tags {teacher.tags}, the student {scheme} tags {list(tags)}; train "
                          "the student with the teacher's labels and scheme")
    if teacher.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"config field 'teacher': {teacher_path} has another tokenizer than "
                          "the base model; the student must share the teacher's base model")
    log(f"teacher {teacher_path} ({1 + len(teacher.members)} model(s)): word probabilities "
        f"for {len(items)} training windows")
    rows = run_windows(teacher.logits_function(), tokenizer, tokenized, items,
                       batch_size=batch_size, max_width=teacher.max_positions, progress=progress,
                       desc="teacher")
    for feature, item, logprobs in zip(features, items, rows, strict=True):
        dense = np.zeros((len(feature["input_ids"]), len(tags)), dtype=np.float32)
        dense[word_positions(tokenized[item.doc], item, prefix)] = np.exp(logprobs)
        feature[TEACHER_PROBS] = dense
    return {"path": str(teacher_path), "members": 1 + len(teacher.members),
            "dev_metrics": teacher.meta.get("dev_metrics")}


class TeacherCollator:
    """The token-classification collator, plus the teacher's rows padded like the labels."""

    def __init__(self, collator, padding_side: str) -> None:
        self.collator = collator
        self.padding_side = padding_side

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features or TEACHER_PROBS not in features[0]:  # dev windows have no teacher
            return self.collator(features)
        rows = [f[TEACHER_PROBS] for f in features]
        batch = self.collator([{k: v for k, v in f.items() if k != TEACHER_PROBS}
                               for f in features])
        width = batch["input_ids"].shape[1]
        probs = torch.zeros((len(rows), width, rows[0].shape[1]), dtype=torch.float32)
        for i, row in enumerate(rows):
            start = width - len(row) if self.padding_side == "left" else 0
            probs[i, start:start + len(row)] = torch.from_numpy(row)
        batch[TEACHER_PROBS] = probs
        return batch


class DistillationTrainer(Trainer):
    """Trainer whose training loss is ``(1 - w) * CE(gold) + w * CE(teacher)`` over the
    labelled sub-tokens, ``w`` being ``teacher_weight``."""

    def __init__(self, *args, teacher_weight: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teacher_weight = teacher_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher = inputs.pop(TEACHER_PROBS, None)
        if teacher is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**inputs)  # with the labels: outputs.loss is the gold cross-entropy
        labelled = inputs["labels"] != -100
        logprobs = torch.log_softmax(outputs.logits.float(), dim=-1)
        soft = -(teacher.to(logprobs.device) * logprobs).sum(-1)[labelled].mean()
        loss = (1 - self.teacher_weight) * outputs.loss + self.teacher_weight * soft
        return (loss, outputs) if return_outputs else loss


__all__ = ["TEACHER_PROBS", "DistillationTrainer", "TeacherCollator", "attach_teacher"]
