"""LoRA / QLoRA instruction fine-tuning with peft and trl's SFTTrainer.

Examples are tokenized here, not by trl: prompt ids come from ``generate.encode_prompt`` (the
call generation uses), completion ids are the completion plus end-of-sequence, and the
loss covers the completion only (``completion_mask``). Examples longer than ``max_length``
are skipped and counted, never truncated. Each evaluation logs the dev loss and the strict
F1 of actually generating on a dev sample (plus hallucinations and tokens/s); the best
checkpoint by that F1 is kept.
"""

from __future__ import annotations

import random
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from medner.backends.llm.config import LLMConfig, defaults
from medner.backends.llm.generate import encode_prompt
from medner.backends.llm.model import ADAPTER_FILES, LLMModel, load_adapter_merged, load_base
from medner.backends.llm.prompts import prompt_tokens, render_prompt
from medner.backends.prompted.answers import text_pieces
from medner.backends.prompted.prompts import Task, document_tasks, get_template
from medner.core import training
from medner.core.data import Data, Log, load_data
from medner.core.folder import (
    MEDNER_JSON,
    folder_header,
    read_medner_json,
    write_json,
)
from medner.core.training import step_of
from medner.document import Document
from medner.errors import ConfigError, MednerError
from medner.labels import LabelSchema


@dataclass
class TrainResult:
    path: Path
    meta: dict[str, Any]
    model: Any = None
    """The trained peft model still in memory (tests compare its weights)."""


def build_examples(docs: Sequence[Document], tasks: Sequence[Task], tokenizer,
                   schema: LabelSchema, max_length: int) -> tuple[list[dict], dict[str, int]]:
    """Tokenized prompt+completion examples with a completion mask, and what was skipped."""
    examples, counts = [], {"examples": 0, "too_long": 0, "no_task": 0}
    for doc in docs:
        doc_tasks = document_tasks(doc, tasks)
        if not doc_tasks:
            counts["no_task"] += 1
        for task in doc_tasks:
            prompt = render_prompt(tokenizer, task.user_message(doc.text, schema))
            prompt_ids = encode_prompt(tokenizer, prompt)
            completion_ids = list(tokenizer(task.completion(doc),
                                            add_special_tokens=False)["input_ids"])
            completion_ids.append(tokenizer.eos_token_id)
            ids = prompt_ids + completion_ids
            if len(ids) > max_length:
                counts["too_long"] += 1
                continue
            examples.append({"input_ids": ids,
                             "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids)})
    counts["examples"] = len(examples)
    return examples, counts


def piece_documents(docs: Sequence[Document], tasks: Sequence[Task], tokenizer,
                    schema: LabelSchema, limit: int) -> tuple[list[Document], dict[str, int]]:
    """Documents cut into pieces whose prompt fits ``limit`` tokens, with the spans inside.

    Documents that fit whole give no pieces. A piece that a mention crosses is left out and
    counted; relations are dropped (they belong to the whole document).
    """
    def measure(text: str) -> int:
        return prompt_tokens(tokenizer, tasks, schema, text)

    pieces, counts = [], {"pieces": 0, "crossed": 0}
    for doc in docs:
        bounds = text_pieces(doc.text, measure, limit)
        if len(bounds) == 1:
            continue
        for n, (start, end) in enumerate(bounds):
            if any(s.start < end and s.end > start and not (start <= s.start and s.end <= end)
                   for s in doc.spans):
                counts["crossed"] += 1
                continue
            spans = [replace(s, start=s.start - start, end=s.end - start, fragments=tuple(
                (a - start, b - start) for a, b in s.fragments))
                for s in doc.spans if start <= s.start and s.end <= end]
            pieces.append(Document(f"{doc.id}#{n}", doc.text[start:end], tuple(spans),
                                   metadata={**doc.metadata, "piece_of": doc.id}))
    counts["pieces"] = len(pieces)
    return pieces, counts


def dev_sample(docs: Sequence[Document], size: int | None, seed: int) -> list[Document]:
    if not size or size >= len(docs):
        return list(docs)
    keep = sorted(random.Random(seed).sample(range(len(docs)), size))
    return [docs[i] for i in keep]


def generation_metrics(probe: LLMModel, gold: Sequence[Document]) -> dict[str, Any]:
    """Strict span P/R/F1 (and relation F1) of generated answers, with the LLM's counts."""
    from medner.scoring import evaluate

    started = time.perf_counter()
    predicted = probe.predict(gold)
    report = evaluate(list(gold), predicted, modes=("strict",), bootstrap=0,
                      notes=probe.last_notes)
    strict = report.results["strict"]
    # the encoder's shape (``score_spans``), plus what only generation has
    out: dict[str, Any] = {
        "micro": strict.micro.to_dict(),
        "macro": {"precision": strict.macro.precision, "recall": strict.macro.recall,
                  "f1": strict.macro.f1},
        "per_label": {k: v.to_dict() for k, v in strict.per_label.items()},
        "documents": len(gold), "notes": dict(probe.last_notes),
        "generation": probe.last_stats.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if report.relations is not None and probe.predicts_relations:
        out["relations"] = {**report.relations.micro.to_dict(),
                            "basis": report.relations.basis}
    return out


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalars the trainer logs (``eval_strict_f1`` picks the best checkpoint)."""
    micro = metrics["micro"]
    flat = {"strict_f1": float(micro["f1"]), "strict_precision": float(micro["precision"]),
            "strict_recall": float(micro["recall"]), "documents": float(metrics["documents"]),
            "seconds": float(metrics["seconds"])}
    if "relations" in metrics:
        flat["relation_f1"] = float(metrics["relations"]["f1"])
    flat["hallucinations"] = metrics["notes"].get("llm_hallucinations", 0)
    flat["bad_lines"] = metrics["notes"].get("llm_bad_lines", 0)
    flat["tokens_per_second"] = metrics["generation"]["tokens_per_second"]
    return flat


def _wrap_lora(model, config: LLMConfig, adapter: Path | None = None):
    """The base model with a new LoRA adapter, or with the saved ``adapter`` made trainable."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if config.quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if adapter is not None:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.lora_targets),
                      bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if type(m).__name__.startswith("Linear")})
        raise ConfigError(f"lora_targets {list(config.lora_targets)} do not fit the base model "
                          f"({exc}); its linear layers are named: {', '.join(names)}") from None


def _checkpointing_field(arguments_class) -> str:
    """transformers renamed ``gradient_checkpointing`` to ``activation_checkpointing`` (the
    old name stays, deprecated, until v6); releases before the rename know only the old."""
    names = {f.name for f in fields(arguments_class)}
    return "activation_checkpointing" if "activation_checkpointing" in names else (
        "gradient_checkpointing")


def _continued(config: LLMConfig, log: Log) -> tuple[LLMConfig, Path, dict[str, Any]]:
    """The config with ``continue_from``'s base model and LoRA settings, its adapter folder,
    and where it came from (for ``medner.json``)."""
    import json

    folder = Path(config.continue_from or "")
    if not (folder / MEDNER_JSON).is_file():
        raise ConfigError(f"continue_from: {folder} is not a trained medner model folder "
                          f"(no {MEDNER_JSON})")
    meta = read_medner_json(folder)
    if meta.get("backend") != "llm":
        raise ConfigError(f"continue_from: {folder} is a {meta.get('backend')} model; only an "
                          "LLM folder has a LoRA adapter to continue")
    adapter = folder / meta.get("adapter", ".")
    missing = [name for name in ADAPTER_FILES if not (adapter / name).is_file()]
    if missing:
        raise ConfigError(f"continue_from: {adapter} lacks {', '.join(missing)}")
    base_name = meta["base_model"]["name"]
    if config.base_model not in (base_name, defaults()["base_model"]):
        raise ConfigError(f"continue_from: {folder} was trained on base model {base_name!r}, "
                          f"not {config.base_model!r}; leave out --base-model")
    settings = adapter / "adapter_config.json"
    try:
        lora = json.loads(settings.read_text(encoding="utf-8"))
        continued = replace(config, base_model=base_name, lora_r=int(lora["r"]),
                            lora_alpha=int(lora["lora_alpha"]),
                            lora_dropout=float(lora["lora_dropout"]),
                            lora_targets=tuple(sorted(lora["target_modules"])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"continue_from: {settings} is not a readable LoRA config ({exc!r})"
                          ) from None
    log(f"continuing the LoRA adapter of {folder} (trained {meta.get('global_steps')} steps "
        f"on {meta.get('template')}); its LoRA settings apply: r={continued.lora_r}, "
        f"alpha={continued.lora_alpha}")
    origin = {"folder": str(folder.resolve()), "template": meta.get("template"),
              "global_steps": meta.get("global_steps"), "created": meta.get("created")}
    return continued, adapter, origin


def train(config: LLMConfig, *, log: Log = print, progress: bool = True) -> TrainResult:
    """Fine-tune, evaluate by generating, and write the model folder ``config.out``."""
    import torch
    from transformers import set_seed

    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    data = load_data(config, log)
    template = get_template(config.template)
    tasks = template.build_tasks(data.schema)
    if config.train_piece_tokens and not any(t.kind == "entities" for t in tasks):
        raise ConfigError(f"train_piece_tokens cuts documents for entity answers, and the "
                          f"{template.name!r} template asks for none; leave it out")
    precision = training.run_precision(config.bf16)
    set_seed(config.seed)
    adapter = continued_from = None
    if config.continue_from:
        config, adapter, continued_from = _continued(config, log)
    base, model, tokenizer = load_base(config.base_model, quantize=config.quantize,
                                       bf16=precision.bf16, device=precision.device, log=log)
    model = _wrap_lora(model, config, adapter)
    trainable, total = model.get_nb_trainable_parameters()
    log(f"LoRA r={config.lora_r} alpha={config.lora_alpha} on {list(config.lora_targets)}: "
        f"{trainable:,} trainable of {total:,} parameters"
        + (" (base in 4-bit NF4)" if config.quantize else ""))
    run = _Run(config, data, template.name, tasks, tokenizer, log)
    trainer = run.trainer(model, precision, progress)
    resume_from = training.resume_checkpoint(run.work_dir, config.resume, log)
    train_started = time.perf_counter()
    train_out = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds = time.perf_counter() - train_started
    state = trainer.state
    tokenizer.padding_side = "left"
    steps = max(1, state.global_step - (step_of(resume_from) or 0))
    meta = {
        **folder_header("llm", config.out),
        "weights": "merged" if config.merge else "adapter",
        "adapter": "adapter" if config.merge else ".",
        "base_model": base.to_dict(),
        "template": template.name,
        "tasks": [t.name for t in tasks],
        "schema": data.schema.to_dict(),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "training_config": config.to_dict(),
        "continued_from": continued_from,
        "inference": _inference(config),
        "dev_metrics": run.final_dev_metrics(trainer),
        "selection_metric": run.selection,
        "data": {**data.info, "train_examples": run.train_counts,
                 "dev_examples": run.dev_counts},
        "epochs_run": round(float(state.epoch or 0), 2),
        "global_steps": state.global_step,
        "best_step": step_of(state.best_model_checkpoint),
        "train_loss": round(float(train_out.training_loss), 5),
        "train_seconds": round(train_seconds, 1),
        "seconds_per_step": round(train_seconds / steps, 3),
        "train_tokens": state.num_input_tokens_seen,
        # over this run's own steps only: a resumed run saw its first tokens before
        "train_tokens_per_second": (round(state.num_input_tokens_seen / train_seconds, 1)
                                    if resume_from is None else None),
        "total_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "quantize": config.quantize,
        **precision.record(),
        "log_history": state.log_history,
    }
    path = training.save_run(trainer, config.out, run.work_dir,
                    lambda folder, staging: _write_folder(folder, staging, meta, tokenizer,
                                                          config))
    if path is not None:
        log(f"saved {path} in {time.perf_counter() - started:.0f} s")
    return TrainResult(Path(config.out).resolve(), meta, trainer.model)


class _Run:
    """One training run's examples, dev sample and trainer: what ``train`` hands to trl."""

    def __init__(self, config: LLMConfig, data: Data, template: str, tasks: Sequence[Task],
                 tokenizer, log: Log) -> None:
        self.config, self.data, self.tasks, self.tokenizer, self.log = (
            config, data, tasks, tokenizer, log)
        self.work_dir = training.work_folder(config.out)
        self.train_examples, self.train_counts = self._train_examples()
        self.sample = dev_sample(data.dev, config.eval_sample, config.seed)
        self.dev_examples, self.dev_counts = build_examples(
            self.sample, tasks, tokenizer, data.schema, config.max_length)
        if data.dev:
            log(f"dev: generating on {len(self.sample)} of {len(data.dev)} documents at each "
                "evaluation")
        self.meta_probe = {"template": template, "schema": data.schema.to_dict(),
                           "inference": _inference(config)}
        self.selection = ("strict_f1" if any(t.kind == "entities" for t in tasks)
                          else "relation_f1")
        self.last_eval: dict[str, Any] = {}

    def _train_examples(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        config, data, tokenizer = self.config, self.data, self.tokenizer
        examples, counts = build_examples(data.train, self.tasks, tokenizer, data.schema,
                                          config.max_length)
        self.log(f"train: {len(data.train)} documents -> {counts['examples']} examples "
                 f"({counts['too_long']} longer than {config.max_length} tokens skipped)")
        if config.train_piece_tokens:
            entity_tasks = [t for t in self.tasks if t.kind == "entities"]
            pieces, piece_counts = piece_documents(data.train, entity_tasks, tokenizer,
                                                   data.schema, config.train_piece_tokens)
            piece_examples, _ = build_examples(pieces, entity_tasks, tokenizer, data.schema,
                                               config.max_length)
            examples += piece_examples
            self.log(f"train pieces (prompts of at most {config.train_piece_tokens} tokens): "
                     f"{len(piece_examples)} more examples ({piece_counts['crossed']} pieces "
                     "that a mention crosses left out)")
        if not examples:
            raise MednerError("no training examples: every example is longer than max_length "
                              "or the documents have no targets for this template")
        return examples, counts

    def evaluate_generation(self, model) -> dict[str, Any]:
        # fp32 decoding: autocast would re-cast the frozen weights at every step
        probe = LLMModel(model, self.tokenizer, self.meta_probe, bf16=False)
        return generation_metrics(probe, self.sample)

    def trainer(self, model, precision: training.RunPrecision, progress: bool):
        """trl's SFTTrainer whose evaluations also generate on the dev sample."""
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        config, run = self.config, self
        has_dev = bool(self.dev_examples)

        class GenerativeEvalTrainer(SFTTrainer):
            def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
                metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
                full = run.evaluate_generation(self.model)
                run.last_eval.update(step=self.state.global_step, metrics=full)
                generated = _flat(full)
                extra = {f"{metric_key_prefix}_{k}": v for k, v in generated.items()}
                self.log(extra)
                metrics.update(extra)
                run.log(f"step {self.state.global_step}: dev loss "
                        f"{metrics.get('eval_loss', 0):.4f}, generation strict F1 "
                        f"{100 * generated['strict_f1']:.2f} on {len(run.sample)} docs, "
                        f"hallucinations {generated['hallucinations']:.0f}, "
                        f"{generated['tokens_per_second']:.1f} tokens/s")
                return metrics

        args = SFTConfig(
            **training.common_arguments(config, self.work_dir, precision=precision,
                                        progress=progress,
                                        selection=self.selection if has_dev else None,
                                        eval_steps=config.eval_steps),
            # QLoRA on a GPU: optimizer states in paged 8-bit memory (the QLoRA paper's
            # recipe), so long examples' spikes page out instead of running out of memory
            **({"optim": "paged_adamw_8bit"}
               if config.quantize and precision.device.startswith("cuda") else {}),
            per_device_eval_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum,
            logging_steps=config.logging_steps,
            # trl turns checkpointing on by default; off, a CPU step is 35% faster
            # (benchmarks/llm.py memory) at the cost of more memory
            **{_checkpointing_field(SFTConfig): config.gradient_checkpointing},
            train_sampling_strategy="group_by_length" if config.group_by_length else "random",
            include_num_input_tokens_seen="non_padding",  # for the tokens/s in medner.json
            max_length=None,  # examples were length-checked above: nothing is cut
            completion_only_loss=True,
            packing=False,
        )
        return GenerativeEvalTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(self.train_examples),
            eval_dataset=Dataset.from_list(self.dev_examples) if has_dev else None,
            processing_class=self.tokenizer)

    def final_dev_metrics(self, trainer) -> dict[str, Any] | None:
        """Generation metrics of the selected model (reused when it was just evaluated)."""
        if not self.sample:
            return None
        state = trainer.state
        best = step_of(state.best_model_checkpoint) or state.global_step
        if self.last_eval.get("step") == state.global_step == best:
            metrics = self.last_eval["metrics"]
        else:
            metrics = self.evaluate_generation(trainer.model)
        micro = metrics["micro"]
        metrics["sample"] = {"documents": len(self.sample), "of": len(self.data.dev),
                             "seed": self.config.seed}
        self.log(f"dev (generation, {len(self.sample)} documents): strict micro F1 "
                 f"{100 * micro['f1']:.2f} (P {100 * micro['precision']:.2f}, "
                 f"R {100 * micro['recall']:.2f}); hallucinations "
                 f"{metrics['notes']['llm_hallucinations']}; "
                 f"{metrics['generation']['tokens_per_second']:.1f} tokens/s")
        return metrics


def _write_folder(folder: Path, staging: Path, meta: dict[str, Any], tokenizer,
                  config: LLMConfig) -> None:
    # With --merge the full weights take the top level (plain transformers loads them)
    # and the adapter moves to adapter/: transformers would otherwise see
    # adapter_config.json next to merged weights and apply the adapter twice.
    adapter_dir = folder / meta["adapter"]
    adapter_dir.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copy2(staging / name, adapter_dir / name)
    tokenizer.save_pretrained(str(folder))
    if config.merge:
        merged = load_adapter_merged(adapter_dir, config.base_model)
        merged.save_pretrained(str(folder), safe_serialization=True)
    write_json(folder / MEDNER_JSON, meta)
    (folder / "README.md").write_text(model_card(meta), encoding="utf-8")


def model_card(meta: dict[str, Any]) -> str:
    m = meta.get("dev_metrics") or {}
    lines = [
        "---", "library_name: peft", "pipeline_tag: text-generation",
        "tags: [medner, ner, medical, lora]", "---", "",
        f"# medner LLM: {meta['schema']['name']} ({meta['template']})", "",
        f"LoRA fine-tune of `{meta['base_model']['name']}` that answers the `{meta['template']}` "
        f"prompt template for {', '.join(meta['schema']['labels'])}; answers are grounded to "
        "character offsets by medner (strings not in the text are dropped and counted).", "",
        "```python", "import medner", f'model = medner.load("{meta["folder_name"]}")',
        'docs = model.extract(["Cisplatin-induced nephrotoxicity in rats."])', "```", "",
        "## Dev metrics (generation, strict span match)", "",
    ]
    if m:
        sample = m.get("sample", {})
        micro = m["micro"]
        lines += [f"- strict micro F1 {100 * micro['f1']:.2f} "
                  f"(P {100 * micro['precision']:.2f}, R {100 * micro['recall']:.2f}) "
                  f"on {sample.get('documents')} of "
                  f"{sample.get('of')} dev documents",
                  f"- hallucinated strings dropped: {m['notes'].get('llm_hallucinations')}; "
                  f"bad answer lines: {m['notes'].get('llm_bad_lines')}",
                  f"- {m['generation']['tokens_per_second']} generated tokens/s"]
        if "relations" in m:
            lines.append(f"- relation micro F1 {100 * m['relations']['f1']:.2f} "
                         f"({m['relations']['basis']})")
    else:
        lines.append("No dev set was given; no metrics.")
    lines += ["", f"Training config, schema, data fingerprints and the log are in `{MEDNER_JSON}`.",
              ""]
    return "\n".join(lines)


def _inference(config: LLMConfig) -> dict[str, Any]:
    return {"max_new_tokens": config.max_new_tokens, "batch_size": config.predict_batch_size,
            "max_prompt_tokens": config.max_prompt_tokens, "constrained": config.constrained,
            "repeat_patience": config.repeat_patience, "abbreviations": config.abbreviations}


__all__ = ["TrainResult", "build_examples", "dev_sample", "generation_metrics",
           "piece_documents", "train"]
