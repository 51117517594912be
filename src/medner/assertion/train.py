"""Fine-tune the assertion classifier on gold spans and their assertions (transformers'
Trainer; one example per span, see ``inputs``).

A seeded part of the training documents is held out: after each epoch the model is scored
there (macro-F1 over the values) and the best epoch is kept. Dev and test data are never
seen. The values are the ones the training data has, ``present`` first.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medner.assertion.config import AssertionConfig
from medner.assertion.inputs import span_inputs
from medner.assertion.model import AssertionModel
from medner.basemodels import load_encoder_base
from medner.core.data import Log
from medner.core.training import (
    common_arguments,
    resume_checkpoint,
    run_precision,
    save_run,
    work_folder,
)
from medner.document import PRESENT, Document, corpus_fingerprint
from medner.errors import ConfigError
from medner.scoring.spans import prf
from medner.split import hold_out


def examples(documents: Sequence[Document], config: AssertionConfig
             ) -> list[tuple[str, str, str]]:
    """(label phrase, marked context, gold value) for every span; a span without an
    assertion is ``present`` (corpora mark only the negated and uncertain findings)."""
    return [(label, context, span.assertion or PRESENT) for document in documents
            for (label, context), span in zip(span_inputs(document, config), document.spans,
                                              strict=True)]


def value_order(values: Iterable[str]) -> list[str]:
    """The values seen, ``present`` first, then by name: a stable class order."""
    return sorted(set(values) | {PRESENT}, key=lambda v: (v != PRESENT, v))


class SpanDataset:
    """Tokenized examples for the Trainer (a map-style dataset of feature dicts)."""

    def __init__(self, model: AssertionModel, rows: Sequence[tuple[str, str, str]],
                 values: Sequence[str]) -> None:
        index = {v: k for k, v in enumerate(values)}
        encoded = model.tokenizer([r[0] for r in rows], [r[1] for r in rows],
                                  truncation="only_second", max_length=model.config.max_length)
        self.items = [{**{key: encoded[key][k] for key in encoded}, "labels": index[r[2]]}
                      for k, r in enumerate(rows)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict[str, Any]:
        return self.items[k]


def macro_f1(gold: Sequence[int], predicted: Sequence[int], n_values: int) -> dict[str, float]:
    """Accuracy and macro-F1 over the values (each value's F1 from its tp, fp, fn)."""
    f1s = []
    for value in range(n_values):
        tp = sum(g == p == value for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == value != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == value != p for g, p in zip(gold, predicted, strict=True))
        f1s.append(prf(tp, fp, fn)[2])
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {"accuracy": correct / max(1, len(gold)), "macro_f1": sum(f1s) / n_values}


def train_assertion(train_docs: Iterable[Document], *, out: str | Path | None = None,
                    config: AssertionConfig | None = None, resume: bool = False,
                    progress: bool = False, log: Log = print) -> AssertionModel:
    """Train an assertion classifier on ``train_docs`` (spans whose ``assertion`` is set where
    it is not ``present``); save it to ``out`` when given. With ``out``, checkpoints are kept
    beside it while training; ``resume`` continues from the latest."""
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    config = config or AssertionConfig()
    documents = list(train_docs)
    rows = examples(documents, config)
    counts = Counter(r[2] for r in rows)
    if len(counts) < 2:
        raise ConfigError(f"assertion training: the training spans all have assertion "
                          f"{next(iter(counts), PRESENT)!r} ({len(rows)} spans); it needs at "
                          "least two values to learn from (e.g. brat POLARITY lines)")
    if config.threads:
        torch.set_num_threads(config.threads)
    set_seed(config.seed)
    values = value_order(counts)
    base, tokenizer, network = load_encoder_base(
        config.base_model, "the assertion classifier",
        lambda path: AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(values), id2label=dict(enumerate(values)),
            label2id={v: k for k, v in enumerate(values)}))
    precision = run_precision(None)
    model = AssertionModel(network, tokenizer, config, bf16=precision.bf16)
    train_part, held = (hold_out(documents, config.held_out, config.seed) if config.held_out
                        else (documents, []))
    train_set = SpanDataset(model, examples(train_part, config), values)
    held_set = SpanDataset(model, examples(held, config), values) if held else None
    log(f"assertion: {len(train_set):,} training spans from {len(train_part)} documents, "
        f"{len(held_set or ()):,} held out; values {dict(counts.most_common())}")

    def compute_metrics(prediction) -> dict[str, float]:
        predicted = np.argmax(prediction.predictions, axis=-1)
        return macro_f1(prediction.label_ids.tolist(), predicted.tolist(), len(values))

    work_dir = work_folder(out or "assertion-model")
    arguments = common_arguments(config, work_dir, precision=precision, progress=progress,
                                 selection="macro_f1" if held_set else None, eval_steps=None)
    # sentences vary from 5 to 100 tokens: batches of like length spare most of the padding
    arguments["train_sampling_strategy"] = "group_by_length"
    trainer = Trainer(model=network, args=TrainingArguments(**arguments),
                      train_dataset=train_set, eval_dataset=held_set,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_metrics)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(work_dir, resume, log))
    model.record = {"base_model": base.name, "train_documents": len(train_part),
                    "held_out_documents": len(held), "train_spans": len(train_set),
                    "values": dict(counts), "corpus": corpus_fingerprint(documents),
                    "held_out": trainer.evaluate() if held_set else None,
                    **precision.record(), "seconds": round(time.perf_counter() - started, 1)}
    model.network = trainer.model.eval()
    if out is not None:
        model.path = str(save_run(trainer, out, work_dir,
                                  lambda folder, _staging: model.write_files(folder, out)))
    return model
