"""Fine-tune an encoder for span extraction with transformers' Trainer.

Dev selection uses medner's own scorer (strict micro F1) on the same window merging and
constrained decoding that ``extract`` uses, so the selected checkpoint is the best one
for what users run, not for a per-token proxy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medner.abbreviations import propagate_all
from medner.backends.encoder.align import (
    AlignmentReport,
    Tokenized,
    tag_names,
    tokenize_documents,
    word_tags,
)
from medner.backends.encoder.config import EncoderConfig
from medner.backends.encoder.decode import Decoder
from medner.backends.encoder.folder import LABELS_JSON, model_card
from medner.backends.encoder.model import EncoderModel
from medner.backends.encoder.predict import decode_documents
from medner.backends.encoder.windows import (
    WindowItem,
    special_layout,
    window_input_ids,
    window_items,
    word_positions,
)
from medner.core.data import Log, load_data
from medner.core.folder import MEDNER_JSON, folder_header, write_json
from medner.core.training import (
    RunPrecision,
    common_arguments,
    resume_checkpoint,
    run_precision,
    save_run,
    step_of,
    work_folder,
)
from medner.document import Document
from medner.errors import ConfigError, MednerError
from medner.scoring import score_spans


class WindowDataset:
    """Plain list of feature dicts; the Trainer's collator pads them."""

    def __init__(self, features: list[dict[str, list[int]]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.features[i]


def build_features(tokenizer, docs: Sequence[Document], tokenized: Sequence[Tokenized],
                   items: Sequence[WindowItem], tag_index: dict[str, int],
                   word_tag_lists: Sequence[list[str]]) -> list[dict[str, list[int]]]:
    """Input ids and labels on each word's first sub-token (-100 elsewhere)."""
    prefix, _ = special_layout(tokenizer)
    features = []
    for item in items:
        tok = tokenized[item.doc]
        ids = window_input_ids(tokenizer, tok, item)
        labels = [-100] * len(ids)
        tags = word_tag_lists[item.doc]
        for w, pos in zip(range(item.word_a, item.word_b), word_positions(tok, item, prefix),
                          strict=True):
            labels[int(pos)] = tag_index[tags[w]]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return features


def prepare_split(tokenizer, docs: Sequence[Document], config: EncoderConfig, tags: list[str],
                  max_length: int, stride: int, report: AlignmentReport | None,
                  sort: bool = False):
    tokenized = tokenize_documents(tokenizer, [d.text for d in docs])
    _, n_special = special_layout(tokenizer)
    tag_lists = [word_tags(d, t, config.scheme, config.align,
                           report if report is not None else AlignmentReport())
                 for d, t in zip(docs, tokenized, strict=True)]
    items = window_items(tokenized, max_length, stride, n_special)
    if sort:  # eval order is ours to choose: by length, so padding is minimal
        items.sort(key=lambda it: it.end - it.start, reverse=True)
    index = {t: i for i, t in enumerate(tags)}
    features = build_features(tokenizer, docs, tokenized, items, index, tag_lists)
    return tokenized, items, features


@dataclass
class TrainResult:
    path: Path
    meta: dict[str, Any]


def _load_base(config: EncoderConfig, tags: list[str]):
    from transformers import AutoConfig, AutoModelForTokenClassification

    from medner.basemodels import load_encoder_base

    def token_classifier(path: str):
        hf_config = AutoConfig.from_pretrained(
            path, num_labels=len(tags), id2label=dict(enumerate(tags)),
            label2id={t: i for i, t in enumerate(tags)}, finetuning_task="ner")
        if config.dropout is not None:
            hf_config.classifier_dropout = config.dropout
        return AutoModelForTokenClassification.from_pretrained(path, config=hf_config)

    base, tokenizer, model = load_encoder_base(config.base_model, "the encoder backend",
                                               token_classifier)
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    if config.max_length > limit or config.predict_max_length > limit:
        raise ConfigError(f"max_length/predict_max_length exceed the base model's {limit} "
                          "positions")
    return base, tokenizer, model


@dataclass
class DevSplit:
    """The dev documents as the Trainer evaluates them: windows sorted by length."""

    docs: Sequence[Document]
    tokenized: Sequence[Tokenized]
    items: Sequence[WindowItem]
    features: list[dict[str, list[int]]]


def prediction_stride(config: EncoderConfig) -> int:
    """Tokens shared by neighbouring prediction windows (dev selection and the saved model)."""
    return max(config.stride, config.predict_max_length // 4)


def train(config: EncoderConfig, *, log: Log = print, progress: bool = True) -> TrainResult:
    """Train, select on dev, and write the model folder ``config.out``."""
    import torch
    from transformers import set_seed

    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    data = load_data(config, log)
    tags = tag_names(data.schema.labels, config.scheme)
    set_seed(config.seed)
    base, tokenizer, model = _load_base(config, tags)
    report = AlignmentReport()
    train_features, dev = _prepare_data(config, data, tokenizer, tags, report, log)
    precision = run_precision(config.bf16)
    work_dir = work_folder(config.out)
    trainer = _build_trainer(config, model, tokenizer, tags, train_features, dev,
                             work_dir=work_dir, precision=precision, progress=progress)
    train_out = trainer.train(resume_from_checkpoint=resume_checkpoint(work_dir, config.resume,
                                                                       log))
    inference = _inference(config)
    dev_metrics = None
    if dev is not None:
        dev_metrics = _final_dev_metrics(trainer.model, tokenizer, config, data, tags,
                                         inference, precision.bf16, log)
    seconds = time.perf_counter() - started
    meta = {
        **folder_header("encoder", config.out),
        "schema": data.schema.to_dict(),
        "scheme": config.scheme,
        "tags": tags,
        "base_model": base.to_dict(),
        "training_config": config.to_dict(),
        "inference": inference,
        "dev_metrics": dev_metrics,
        "data": data.info,
        "alignment": report.to_dict(),
        **_run_record(trainer.state, train_out, seconds, precision),
    }
    path = save_run(trainer, config.out, work_dir,
                    _folder_writer(tokenizer, config.scheme, tags, data.schema.labels, meta))
    if path is not None:
        log(f"saved {path} in {seconds:.0f} s")
    return TrainResult(Path(config.out).resolve(), meta)


def _prepare_data(config: EncoderConfig, data, tokenizer, tags: list[str],
                  report: AlignmentReport, log: Log
                  ) -> tuple[list[dict[str, list[int]]], DevSplit | None]:
    """The training features, and the dev split (None without dev documents)."""
    _, _, train_features = prepare_split(tokenizer, data.train, config, tags,
                                         config.max_length, config.stride, report)
    log(f"train: {len(data.train)} documents -> {len(train_features)} windows of <= "
        f"{config.max_length} tokens; {report.summary()}")
    if not train_features:
        raise MednerError("no training windows: the training documents are empty")
    if not data.dev:
        return train_features, None
    dev_tok, dev_items, dev_features = prepare_split(
        tokenizer, data.dev, config, tags, config.predict_max_length, prediction_stride(config),
        None, sort=True)
    log(f"dev: {len(data.dev)} documents -> {len(dev_features)} windows")
    return train_features, DevSplit(data.dev, dev_tok, dev_items, dev_features)


def _dev_metrics_function(config: EncoderConfig, tags: list[str], dev: DevSplit, prefix: int
                          ) -> Callable[[Any], dict[str, float]]:
    """The Trainer's ``compute_metrics``: strict micro F1 of the dev windows' logits, merged
    and decoded as ``extract`` does."""
    decoder = Decoder(tags, config.scheme)
    texts = [d.text for d in dev.docs]

    def compute_metrics(pred) -> dict[str, float]:
        logprobs = [np.asarray(pred.predictions[k], dtype=np.float32)[
                        word_positions(dev.tokenized[item.doc], item, prefix)]
                    for k, item in enumerate(dev.items)]
        spans = decode_documents(texts, dev.tokenized, dev.items, logprobs, decoder,
                                 config.window_merge, config.propagate, config.join_fragments)
        predicted = [d.with_spans(s) for d, s in zip(dev.docs, spans, strict=True)]
        if config.abbreviations:
            predicted = propagate_all(predicted)
        micro = score_spans(list(dev.docs), predicted, mode="strict")["micro"]
        return {"f1": float(micro["f1"]), "precision": float(micro["precision"]),
                "recall": float(micro["recall"])}

    return compute_metrics


def _build_trainer(config: EncoderConfig, model, tokenizer, tags: list[str],
                   train_features: list[dict[str, list[int]]], dev: DevSplit | None, *,
                   work_dir: Path, precision: RunPrecision, progress: bool):
    """transformers' Trainer (with FGM when ``adversarial_epsilon`` is set), selecting on the
    dev split's strict micro F1 when there is one."""
    from transformers import (
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
    )

    args = TrainingArguments(
        **common_arguments(config, work_dir, precision=precision, progress=progress,
                           selection="f1" if dev is not None else None,
                           eval_steps=config.eval_steps),
        per_device_eval_batch_size=config.predict_batch_size,
        logging_steps=max(1, min(50, len(train_features) // config.batch_size)),
        remove_unused_columns=False,  # the features hold only what the model reads
    )
    trainer_class = Trainer
    if config.adversarial_epsilon:
        from medner.backends.encoder.adversarial import with_adversarial

        trainer_class = with_adversarial(trainer_class, config.adversarial_epsilon)
    prefix, _ = special_layout(tokenizer)
    return trainer_class(
        model=model,
        args=args,
        train_dataset=WindowDataset(train_features),
        eval_dataset=WindowDataset(dev.features) if dev is not None else None,
        data_collator=DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100),
        compute_metrics=(_dev_metrics_function(config, tags, dev, prefix)
                         if dev is not None else None),
        preprocess_logits_for_metrics=(lambda logits, labels: logits.float()),
        callbacks=([EarlyStoppingCallback(config.patience)]
                   if dev is not None and config.patience else []),
    )


def _final_dev_metrics(model, tokenizer, config: EncoderConfig, data, tags: list[str],
                       inference: dict[str, Any], bf16: bool, log: Log) -> dict[str, Any]:
    """The selected model's dev metrics, predicted exactly as the saved folder will."""
    meta = {"scheme": config.scheme, "tags": tags,
            "schema": data.schema.to_dict(), "inference": inference}
    predicted = EncoderModel(model, tokenizer, meta, bf16=bf16).predict(data.dev)
    metrics = score_spans(list(data.dev), predicted, mode="strict")
    log(f"dev strict micro F1 {100 * metrics['micro']['f1']:.2f} "
        f"(P {100 * metrics['micro']['precision']:.2f}, "
        f"R {100 * metrics['micro']['recall']:.2f})")
    return metrics
def _run_record(state, train_out, seconds: float, precision: RunPrecision) -> dict[str, Any]:
    """What ``medner.json`` records about the training run itself."""
    return {
        "epochs_run": round(float(state.epoch or 0), 2),
        "global_steps": state.global_step,
        "best_step": step_of(state.best_model_checkpoint),
        "train_loss": round(float(train_out.training_loss), 5),
        "train_seconds": round(seconds, 1),
        **precision.record(),
        "log_history": state.log_history,
    }


def _folder_writer(tokenizer, scheme: str, tags: list[str], labels: Sequence[str],
                   meta: dict[str, Any]) -> Callable[[Path, Path], None]:
    """``save_run``'s writer: the selected checkpoint's weights, the tokenizer, the label map,
    ``medner.json`` and the model card."""

    def write(folder: Path, staging: Path) -> None:
        shutil.copytree(staging, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("training_args.bin"))
        tokenizer.save_pretrained(str(folder))
        write_json(folder / LABELS_JSON, {"scheme": scheme, "tags": tags, "labels": list(labels)})
        write_json(folder / MEDNER_JSON, meta)
        (folder / "README.md").write_text(model_card(meta), encoding="utf-8")

    return write


def _inference(config: EncoderConfig) -> dict[str, Any]:
    """The prediction settings saved in ``medner.json`` (``inference``)."""
    return {"max_length": config.predict_max_length, "stride": prediction_stride(config),
            "window_merge": config.window_merge, "batch_size": config.predict_batch_size,
            "constrained": True, "propagate": config.propagate,
            "join_fragments": config.join_fragments,
            "abbreviations": config.abbreviations}


__all__ = ["TrainResult", "train"]
