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
from functools import partial
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
from medner.backends.encoder.crf import CRF_MODULE, build_module, loss_function, saved_scores
from medner.backends.encoder.decode import Decoder
from medner.backends.encoder.folder import LABELS_JSON, model_card
from medner.backends.encoder.predict import (
    WindowItem,
    decode_documents,
    special_layout,
    window_input_ids,
    window_items,
    word_positions,
)
from medner.core.data import load_data
from medner.core.device import resolve_bf16
from medner.core.folder import MEDNER_JSON, folder_header, write_json
from medner.core.training import (
    common_arguments,
    resume_checkpoint,
    save_run,
    step_of,
    work_folder,
)
from medner.document import Document
from medner.errors import ConfigError, MednerError

Log = Callable[[str], None]
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


def score(gold: Sequence[Document], pred: Sequence[Document]) -> dict[str, Any]:
    from medner.evaluate import score_spans

    return score_spans(list(gold), list(pred), mode="strict")


@dataclass
class TrainResult:
    path: Path
    meta: dict[str, Any]


def _load_base(config: EncoderConfig, tags: list[str]):
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    from medner.basemodels import resolve

    base = resolve(config.base_model)
    if base.gguf_file:
        raise ConfigError(f"base model {config.base_model!r} is a GGUF language model; the "
                          "encoder backend needs an encoder (e.g. minilm-l6 or a BERT folder)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        hf_config = AutoConfig.from_pretrained(
            base.path, num_labels=len(tags), id2label=dict(enumerate(tags)),
            label2id={t: i for i, t in enumerate(tags)}, finetuning_task="ner")
        if config.dropout is not None:
            hf_config.classifier_dropout = config.dropout
        model = AutoModelForTokenClassification.from_pretrained(base.path, config=hf_config)
    except OSError as exc:
        where = "the Hugging Face Hub (no network?)" if base.source == "hub" else base.path
        raise MednerError(f"cannot load base model {config.base_model!r} from {where}: "
                          f"{exc}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"base model {config.base_model!r} has no fast tokenizer "
                          "(tokenizer.json); span alignment needs character offsets")
    return base, tokenizer, model


def train(config: EncoderConfig, *, log: Log = print, progress: bool = True) -> TrainResult:
    """Train, select on dev, and write the model folder ``config.out``."""
    import torch
    from transformers import (
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    data = load_data(config, log)
    tags = tag_names(data.schema.labels, config.scheme)
    set_seed(config.seed)
    base, tokenizer, model = _load_base(config, tags)
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    if config.max_length > limit or config.predict_max_length > limit:
        raise ConfigError(f"max_length/predict_max_length exceed the base model's {limit} "
                          "positions")

    report = AlignmentReport()
    train_tok, train_items, train_features = prepare_split(
        tokenizer, data.train, config, tags, config.max_length, config.stride, report)
    log(f"train: {len(data.train)} documents -> {len(train_features)} windows of <= "
        f"{config.max_length} tokens; {report.summary()}")
    if not train_features:
        raise MednerError("no training windows: the training documents are empty")
    prefix, _ = special_layout(tokenizer)
    teacher_info = None
    if config.teacher:
        from medner.backends.encoder.distill import attach_teacher

        teacher_info = attach_teacher(train_features, config.teacher, tokenizer, tags,
                                      config.scheme, train_tok, train_items, prefix,
                                      batch_size=config.predict_batch_size, log=log,
                                      progress=progress)

    crf = None
    if config.crf:
        crf = build_module(tags, config.scheme)
        setattr(model, CRF_MODULE, crf)  # its scores train and checkpoint with the model
    dev_texts = [d.text for d in data.dev]
    dev_stride = max(config.stride, config.predict_max_length // 4)
    if data.dev:
        dev_tok, dev_items, dev_features = prepare_split(
            tokenizer, data.dev, config, tags, config.predict_max_length, dev_stride, None,
            sort=True)
        log(f"dev: {len(data.dev)} documents -> {len(dev_features)} windows")

    def compute_metrics(pred) -> dict[str, float]:
        decoder = Decoder(tags, config.scheme,
                          learned=saved_scores(crf) if crf is not None else None)
        logits = pred.predictions
        logprobs = []
        for k, item in enumerate(dev_items):
            pos = word_positions(dev_tok[item.doc], item, prefix)
            row = np.asarray(logits[k], dtype=np.float32)[pos]
            logprobs.append(row)
        spans = decode_documents(dev_texts, dev_tok, dev_items, logprobs, decoder,
                                 config.window_merge, config.propagate, config.join_fragments)
        predicted = [d.with_spans(s) for d, s in zip(data.dev, spans, strict=True)]
        if config.abbreviations:
            predicted = propagate_all(predicted)
        micro = score(data.dev, predicted)["micro"]
        return {"f1": float(micro["f1"]), "precision": float(micro["precision"]),
                "recall": float(micro["recall"])}

    bf16 = resolve_bf16(config.bf16)
    work_dir = work_folder(config.out)
    has_dev = bool(data.dev)
    args = TrainingArguments(
        **common_arguments(config, work_dir, bf16=bf16, progress=progress,
                           selection="f1" if has_dev else None, eval_steps=config.eval_steps),
        per_device_eval_batch_size=config.predict_batch_size,
        logging_steps=max(1, min(50, len(train_features) // config.batch_size)),
        remove_unused_columns=False,  # the features hold only what the model or loss reads
    )
    callbacks = [EarlyStoppingCallback(config.patience)] if has_dev and config.patience else []
    collator = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100)
    trainer_class = Trainer
    if config.teacher:
        from medner.backends.encoder.distill import DistillationTrainer, TeacherCollator

        trainer_class = partial(DistillationTrainer, teacher_weight=config.teacher_weight)
        collator = TeacherCollator(collator, tokenizer.padding_side)
    if config.adversarial_epsilon:
        from medner.backends.encoder.adversarial import with_adversarial

        trainer_class = with_adversarial(trainer_class, config.adversarial_epsilon)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=WindowDataset(train_features),
        eval_dataset=WindowDataset(dev_features) if has_dev else None,
        data_collator=collator,
        compute_metrics=compute_metrics if has_dev else None,
        preprocess_logits_for_metrics=(lambda logits, labels: logits.float()),
        compute_loss_func=loss_function(model) if crf is not None else None,
        callbacks=callbacks,
    )
    resume_from = resume_checkpoint(work_dir, config.resume, log)
    train_out = trainer.train(resume_from_checkpoint=resume_from)
    state = trainer.state

    model = trainer.model
    inference = _inference(config, dev_stride)
    if crf is not None:  # the best checkpoint's scores, loaded in place with its weights
        inference["transitions"] = saved_scores(crf)
    dev_metrics = None
    if has_dev:
        from medner.backends.encoder.model import EncoderModel

        meta_probe = {"scheme": config.scheme, "tags": tags,
                      "schema": data.schema.to_dict(),
                      "inference": inference}
        probe = EncoderModel(model, tokenizer, meta_probe, bf16=bf16)
        predicted = probe.predict(data.dev)
        dev_metrics = score(data.dev, predicted)
        log(f"dev strict micro F1 {100 * dev_metrics['micro']['f1']:.2f} "
            f"(P {100 * dev_metrics['micro']['precision']:.2f}, "
            f"R {100 * dev_metrics['micro']['recall']:.2f})")
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
        "teacher": teacher_info,
        "epochs_run": round(float(state.epoch or 0), 2),
        "global_steps": state.global_step,
        "best_step": step_of(state.best_model_checkpoint),
        "train_loss": round(float(train_out.training_loss), 5),
        "train_seconds": round(seconds, 1),
        "bf16": bf16,
        "log_history": state.log_history,
    }

    if crf is not None:  # its scores are in medner.json; the weights stay a plain model
        delattr(model, CRF_MODULE)

    def write(folder: Path, staging: Path) -> None:
        shutil.copytree(staging, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("training_args.bin"))
        tokenizer.save_pretrained(str(folder))
        write_json(folder / LABELS_JSON, {"scheme": config.scheme, "tags": tags,
                                          "labels": list(data.schema.labels)})
        write_json(folder / MEDNER_JSON, meta)
        (folder / "README.md").write_text(model_card(meta), encoding="utf-8")

    path = save_run(trainer, config.out, work_dir, write)
    if path is not None:
        log(f"saved {path} in {seconds:.0f} s")
    return TrainResult(Path(config.out).resolve(), meta)


def _inference(config: EncoderConfig, stride: int) -> dict[str, Any]:
    return {"max_length": config.predict_max_length, "stride": stride,
            "window_merge": config.window_merge, "batch_size": config.predict_batch_size,
            "constrained": True, "propagate": config.propagate,
            "join_fragments": config.join_fragments,
            "abbreviations": config.abbreviations}


__all__ = ["TrainResult", "train"]
