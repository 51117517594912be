"""Domain-adaptive pretraining: continue a base model's own objective on unlabeled text.

``objective="mlm"`` (masked LM, for encoders) or ``"clm"`` (causal LM, for decoders). The
output folder is a plain transformers model folder plus ``medner.json`` with its lineage,
so it works as ``--base-model`` for ``medner train`` (both backends).

Texts come from any corpus format medner reads (only the text is used), plain ``.txt``
files (paragraphs separated by blank lines are documents) or medner JSONL. Documents that
``medner data check-leak`` finds in the ``exclude`` files (same id, same normalised text, or
one normalised text holding the other whole, e.g. an abstract alone against title +
abstract) are dropped before anything else, and the kept set is checked again with the same
check afterwards: evaluation text never enters pretraining. A seeded fraction of the
documents is held out to measure perplexity before and after; training text is concatenated
and cut into fixed-length blocks.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from medner.core.data import Log
from medner.core.folder import FORMAT_VERSION
from medner.document import Document, corpus_fingerprint
from medner.errors import ConfigError, MednerError
from medner.split import check_leak, hold_out

Objective = Literal["mlm", "clm"]


@dataclass(frozen=True)
class PretrainConfig:
    objective: Objective
    texts: tuple[str, ...]
    base_model: str
    out: str
    exclude: tuple[str, ...] = ()
    text_format: str | None = None
    block_size: int = 128
    held_out: float = 0.05
    mlm_probability: float = 0.15
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup: float = 0.06
    weight_decay: float = 0.01
    seed: int = 13
    save_steps: int = 200
    bf16: bool | None = None
    threads: int | None = None
    resume: bool = False
    report_to: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        checks = [
            (self.objective in ("mlm", "clm"), "objective", "must be mlm or clm"),
            (bool(self.texts), "texts", "needs at least one file"),
            (self.block_size >= 8, "block_size", "must be at least 8"),
            (0 < self.held_out < 1, "held_out", "must be a fraction in (0, 1)"),
            (0 < self.mlm_probability < 1, "mlm_probability", "must be in (0, 1)"),
            (self.epochs > 0, "epochs", "must be > 0"),
            (self.max_steps is None or self.max_steps > 0, "max_steps", "must be > 0"),
            (self.batch_size > 0, "batch_size", "must be > 0"),
            (self.save_steps > 0, "save_steps", "must be > 0"),
            (self.learning_rate > 0, "learning_rate", "must be > 0"),
        ]
        for ok, name, problem in checks:
            if not ok:
                raise ConfigError(f"pretrain option {name!r} {problem} (got "
                                  f"{getattr(self, name)!r})")


@dataclass
class PretrainResult:
    path: Path
    meta: dict[str, Any]


# ------------------------------------------------------------------------------------ texts


def read_documents(paths: Sequence[str | Path], fmt: str | None = None) -> list[Document]:
    """Every document of ``paths``; a plain text file gives one document per paragraph."""
    from medner.io import PLAIN_TEXT, iter_documents, resolve_format
    from medner.io.text import iter_paragraphs

    docs: list[Document] = []
    for path in paths:
        name = resolve_format(path, fmt, plain_text=True)
        if name == PLAIN_TEXT:
            docs += iter_paragraphs(path)
        else:
            docs += [d for d in iter_documents(path, name, on_mismatch="skip")
                     if d.text.strip()]
    return docs


def exclude_documents(docs: list[Document], excluded: list[Document]
                      ) -> tuple[list[Document], dict[str, int]]:
    """``docs`` without every document that ``check_leak`` (the check ``medner data
    check-leak`` runs) finds in ``excluded``: the same id, the same normalised text, or one
    normalised text holding the other whole (an abstract alone against title + abstract, in
    either direction; texts under ``CONTAINMENT_MIN_CHARS`` are not compared that way).

    The kept documents are checked against ``excluded`` once more with the same check, so a
    mistake here cannot pass silently; ``overlap_after_exclusion`` is that re-check's count.
    """
    leak = check_leak(excluded, docs)
    drop = leak.leaked_positions(side=1)
    kept = [d for i, d in enumerate(docs) if i not in drop]
    after = check_leak(excluded, kept)
    if after.leaks:
        raise MednerError(f"exclusion failed: {len(after.leaked_positions(side=1))} documents "
                          f"still match the excluded files ({len(after.shared_ids)} by id, "
                          f"{len(after.shared_texts)} by text, {len(after.contained_texts)} "
                          "by containment)")

    def found_by(check: str) -> int:
        return sum(check in checks for checks in leak.found[1].values())

    return kept, {"documents": len(docs), "excluded": len(docs) - len(kept),
                  "kept": len(kept), "exclude_documents": len(excluded),
                  "excluded_by_id": found_by("id"), "excluded_by_text": found_by("text"),
                  "excluded_by_containment": found_by("contained"),
                  "overlap_after_exclusion": len(after.leaked_positions(side=1))}


def held_out_split(docs: list[Document], fraction: float, seed: int
                   ) -> tuple[list[Document], list[Document]]:
    """(train, held-out) by document; at least one document on each side."""
    if len(docs) < 2:
        raise MednerError(f"pretraining needs at least 2 documents (one held out for "
                          f"perplexity); got {len(docs)}")
    return hold_out(docs, fraction, seed)


def make_blocks(tokenizer, texts: Sequence[str], block_size: int) -> list[list[int]]:
    """Token ids of all texts, joined by a separator token and cut into full blocks.

    The tail shorter than a block is dropped (as transformers' ``group_texts`` recipe does);
    a corpus shorter than one block gives one shorter block so tiny inputs still train.
    """
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    stream: list[int] = []
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for ids in encoded:
        stream.extend(ids)
        if sep is not None:
            stream.append(sep)
    if len(stream) < block_size:
        return [stream] if stream else []
    return [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def _with_specials(tokenizer, blocks: list[list[int]], objective: Objective
                   ) -> list[dict[str, list[int]]]:
    """Encoders expect [CLS] ... [SEP] around every input; decoders take the raw stream."""
    if objective == "clm":
        return [{"input_ids": b} for b in blocks]
    first = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
    last = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    return [{"input_ids": first + b + last} for b in blocks]


# ------------------------------------------------------------------------------------ model


def load_for_objective(base_model: str, objective: Objective, log: Log):
    """(resolved base, model, tokenizer) with the head the objective needs; the tokenizer can
    pad (``load_base`` gives decoders their end-of-sequence token as padding)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from medner.basemodels import resolve

    if objective == "clm":
        from medner.backends.llm.model import load_base

        return load_base(base_model, log=log)
    base = resolve(base_model)
    if base.gguf_file:
        raise ConfigError(f"{base_model!r} is a GGUF decoder: use --objective clm")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        model = AutoModelForMaskedLM.from_pretrained(base.path)
    except (OSError, ValueError) as exc:
        where = "the Hugging Face Hub (no network?)" if base.source == "hub" else base.path
        raise MednerError(f"cannot load {base_model!r} as a masked LM from {where}: "
                          f"{exc}") from None
    if tokenizer.mask_token_id is None:
        raise ConfigError(f"{base_model!r} has no mask token: masked-LM pretraining needs "
                          "an encoder tokenizer (use --objective clm for decoders)")
    return base, model, tokenizer


def perplexity(trainer, dataset) -> float:
    """exp(mean loss) on ``dataset``: perplexity for CLM, pseudo-perplexity for MLM."""
    loss = trainer.evaluate(dataset)["eval_loss"]
    return round(math.exp(min(loss, 50.0)), 4)


def _kept_texts(config: PretrainConfig, log: Log
                ) -> tuple[list[Document], dict[str, Any] | None]:
    """The pretraining documents, less those in ``config.exclude`` (and the counts)."""
    docs = read_documents(config.texts, config.text_format)
    if not config.exclude:
        return docs, None
    docs, exclusion = exclude_documents(docs, read_documents(config.exclude))
    log(f"exclusion: {exclusion['excluded']} of {exclusion['documents']} documents "
        f"dropped (also in {', '.join(config.exclude)}: {exclusion['excluded_by_id']} by "
        f"id, {exclusion['excluded_by_text']} by text, "
        f"{exclusion['excluded_by_containment']} by containment); overlap after: "
        f"{exclusion['overlap_after_exclusion']}")
    return docs, exclusion


def _write_folder(folder: Path, staging: Path, tokenizer, meta: dict[str, Any]) -> None:
    from medner.core.folder import MEDNER_JSON, write_json

    shutil.copytree(staging, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("training_args.bin"))
    tokenizer.save_pretrained(str(folder))
    write_json(folder / MEDNER_JSON, meta)


def _block_dataset(tokenizer, docs: Sequence[Document], block: int, objective: str):
    from datasets import Dataset

    blocks = make_blocks(tokenizer, [d.text for d in docs], block)
    if not blocks:
        raise MednerError("the texts are empty after tokenization")
    return Dataset.from_list(_with_specials(tokenizer, blocks, objective))


def pretrain(config: PretrainConfig, *, log: Log = print, progress: bool = True
             ) -> PretrainResult:
    """Run domain-adaptive pretraining and write the model folder ``config.out``."""
    import resource

    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from medner.core import training

    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    set_seed(config.seed)
    docs, exclusion = _kept_texts(config, log)
    train_docs, held_docs = held_out_split(docs, config.held_out, config.seed)
    base, model, tokenizer = load_for_objective(config.base_model, config.objective, log)
    block = min(config.block_size, _model_limit(model, config.objective))
    train_set, held_set = (_block_dataset(tokenizer, part, block, config.objective)
                           for part in (train_docs, held_docs))
    log(f"{config.objective}: {len(train_docs)} documents -> {len(train_set)} blocks of "
        f"{block} tokens; held out {len(held_docs)} documents -> {len(held_set)} blocks")

    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm=config.objective == "mlm", mlm_probability=config.mlm_probability,
        seed=config.seed)
    precision = training.run_precision(config.bf16)
    work_dir = training.work_folder(config.out, ".checkpoints")
    args = TrainingArguments(
        **training.common_arguments(config, work_dir, precision=precision, progress=progress,
                                    selection=None, eval_steps=config.save_steps,
                                    save_total_limit=1),
        per_device_eval_batch_size=config.batch_size,
        logging_steps=20,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_set, data_collator=collator,
                      processing_class=tokenizer)
    # MLM masks at random: the same masks before and after keep the comparison fair.
    set_seed(config.seed)
    before = perplexity(trainer, held_set)
    log(f"held-out perplexity before: {before}")
    resume_from = training.resume_checkpoint(work_dir, config.resume, log)
    train_started = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - train_started
    set_seed(config.seed)
    after = perplexity(trainer, held_set)
    log(f"held-out perplexity after: {after} ({trainer.state.global_step} steps, "
        f"{train_seconds:.0f} s)")

    meta = {
        "kind": "pretrained-base",
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "objective": config.objective,
        "base_model": base.to_dict(),
        "texts": {"files": list(config.texts), "fingerprint": corpus_fingerprint(docs),
                  "documents": len(docs), "train_documents": len(train_docs),
                  "held_out_documents": len(held_docs), "train_blocks": len(train_set),
                  "held_out_blocks": len(held_set), "block_size": block},
        "exclusion": exclusion,
        "config": {**asdict(config), "texts": list(config.texts),
                   "exclude": list(config.exclude), "report_to": list(config.report_to)},
        "steps": trainer.state.global_step,
        "train_loss": round(float(out.training_loss), 5),
        "perplexity_before": before,
        "perplexity_after": after,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **precision.record(),
    }
    path = training.save_run(
        trainer, config.out, work_dir,
        lambda folder, staging: _write_folder(folder, staging, tokenizer, meta))
    if path is not None:
        log(f"saved {path}")
    return PretrainResult(Path(config.out).resolve(), meta)


def evaluate_lm(model_path: str | Path, texts: Sequence[str | Path], *, objective: str | None
                = None, block_size: int = 128, batch_size: int = 16, seed: int = 13,
                text_format: str | None = None) -> dict[str, Any]:
    """Perplexity of a model on text files (pseudo-perplexity for masked LMs)."""
    from datasets import Dataset
    from transformers import (
        DataCollatorForLanguageModeling,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from medner.core.device import training_device

    chosen = objective or _objective_of(model_path)
    base, model, tokenizer = load_for_objective(str(model_path), chosen, log=lambda _m: None)
    docs = read_documents(texts, text_format)
    block = min(block_size, _model_limit(model, chosen))
    blocks = make_blocks(tokenizer, [d.text for d in docs], block)
    if not blocks:
        raise MednerError("the texts are empty after tokenization")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=chosen == "mlm", seed=seed)
    with tempfile.TemporaryDirectory() as scratch:  # Trainer wants an output_dir
        args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size,
                                 use_cpu=training_device() == "cpu", report_to="none",
                                 disable_tqdm=True,
                                 save_strategy="no")
        trainer = Trainer(model=model, args=args, data_collator=collator,
                          processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # it prints the metrics dict to stdout
        set_seed(seed)
        value = perplexity(trainer, Dataset.from_list(_with_specials(tokenizer, blocks,
                                                                     chosen)))
    return {"model": str(model_path), "objective": chosen, "documents": len(docs),
            "blocks": len(blocks), "block_size": block, "perplexity": value,
            "base_model": base.to_dict()}


def _objective_of(model_path: str | Path) -> str:
    """mlm for encoders (a masked-LM config), clm otherwise; read from config.json."""
    from transformers import AutoConfig

    from medner.basemodels import resolve

    base = resolve(str(model_path))
    if base.gguf_file:
        return "clm"
    config = AutoConfig.from_pretrained(base.path)
    return "clm" if getattr(config, "is_decoder", False) or any(
        a.endswith("ForCausalLM") for a in (config.architectures or [])) else "mlm"


def _model_limit(model, objective: Objective) -> int:
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 10**6
    return limit - 2 if objective == "mlm" else limit  # room for [CLS] and [SEP]


__all__ = ["PretrainConfig", "PretrainResult", "evaluate_lm", "exclude_documents",
           "held_out_split", "make_blocks", "pretrain", "read_documents"]
