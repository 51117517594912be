"""Reproduce the numbers in docs/benchmarks-llm.md (LLM backend, CPU).

    # 1. a bounded LoRA fine-tune (any LLMConfig field can be overridden: --set key=value)
    python benchmarks/llm.py train -c configs/llm-bc5cdr.toml \
        --set train=/data/bc5cdr/CDR_TrainingSet.PubTator.txt \
        --set dev=/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt --set max_steps=40 \
        --set out=runs/llm-bench
    # 2. generation on a dev sample: strict F1, hallucinations, abstracts/s, without the loop
    #    stop, with it, and constrained, on the same documents (--simulate-patience N also
    #    scores the unstopped answers as cut by a stop after N repeated lines; --run picks
    #    some of the three; --abbreviations also scores each run's answers with abbreviation
    #    propagation switched; --answers FILE keeps the raw answers)
    python benchmarks/llm.py generate runs/llm-bench \
        --data /data/bc5cdr/CDR_DevelopmentSet.PubTator.txt --sample 24
    # 3. LoRA vs QLoRA (4-bit NF4) vs LoRA with activation checkpointing: peak memory and
    #    seconds per optimiser step, each in its own process so peak RSS is its own
    python benchmarks/llm.py memory --data /data/bc5cdr/CDR_TrainingSet.PubTator.txt
    # 4. what each template costs: prompt and answer tokens per document (exact counts)
    python benchmarks/llm.py tokens --data /data/bc5cdr/CDR_TrainingSet.PubTator.txt \
        --template entities-json --template entities-lines

Each prints one JSON object (also written with --json FILE). Run with ``nice -n 19`` on a
shared machine; all timings are wall-clock on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py, beside this script
from overrides import parse_overrides


def _emit(result: dict, path: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")


def cmd_train(args) -> dict:
    from medner.backends.llm.config import load_config
    from medner.backends.llm.train import train

    config = load_config(args.config, parse_overrides(args.set or []))
    result = train(config, log=lambda m: print(m, file=sys.stderr), progress=False)
    meta = result.meta
    evals = [{k: e[k] for k in e if k in ("step", "eval_loss", "eval_strict_f1",
                                            "eval_hallucinations", "eval_tokens_per_second")}
             for e in meta["log_history"] if "eval_loss" in e or "eval_strict_f1" in e]
    dev = meta.get("dev_metrics") or {}
    return {"command": "train", "machine": describe(), "config": meta["training_config"],
            "folder": str(result.path), "train_examples": meta["data"]["train_examples"],
            "global_steps": meta["global_steps"], "train_seconds": meta["train_seconds"],
            "seconds_per_step": meta["seconds_per_step"], "peak_rss_mb": meta["peak_rss_mb"],
            "train_loss": meta["train_loss"], "evaluations": evals,
            "dev": {k: dev.get(k) for k in ("micro", "relations", "sample", "notes",
                                            "generation")}}


def cmd_generate(args) -> dict:
    from medner.backends import load
    from medner.backends.llm.generate import repeat_cut
    from medner.backends.llm.train import dev_sample
    from medner.io import read_corpus
    from medner.labels import apply_schema

    if args.max_prompt_tokens is not None and args.max_prompt_tokens < 32:
        # the limit training configs enforce; checked before the model takes its time to load
        raise SystemExit(f"error: --max-prompt-tokens must be at least 32, not "
                         f"{args.max_prompt_tokens}")
    model = load(args.model, batch_size=args.batch_size,
                 max_prompt_tokens=args.max_prompt_tokens)
    gold = read_corpus(args.data).documents
    gold, _ = apply_schema(gold, model.schema)
    sample = dev_sample(gold, args.sample, args.seed)
    runs = {}
    patience = model.repeat_patience
    # decoding without the loop stop first: its answers are cut afterwards to score each
    # --simulate-patience value, exactly what the stop would have kept, at no decoding cost
    settings = {"free": ("unconstrained, no loop stop", False, 0),
                "stop": (f"unconstrained, loop stop after {patience}", False, patience),
                "constrained": (f"constrained, loop stop after {patience}", True, patience)}
    chosen = args.run or list(settings)
    if args.simulate_patience and "free" not in chosen:
        raise SystemExit("--simulate-patience cuts the answers of the 'free' run: add --run free")
    unstopped: list[str] = []
    answers: dict[str, list[dict]] = {}
    for name, constrained, stop_after in (settings[key] for key in chosen):
        model.constrained, model.repeat_patience = constrained, stop_after
        started = time.perf_counter()
        predicted = model.predict(sample)
        seconds = time.perf_counter() - started
        if not stop_after and not constrained:
            unstopped = list(model.last_answers)
        raw = list(model.last_answers)  # one per prompt: several per document for "tutorial"
        answers[name] = ([{"id": doc.id, "answer": answer}
                          for doc, answer in zip(sample, raw, strict=True)]
                         if len(raw) == len(sample)
                         else [{"prompt": k, "answer": answer} for k, answer in enumerate(raw)])
        runs[name] = {**_score(sample, predicted, model, args.bootstrap),
                      "generation": model.last_stats.to_dict(), "seconds": round(seconds, 1),
                      "documents_per_second": round(len(sample) / seconds, 3)}
        print(f"{name}: strict F1 {100 * runs[name]['strict']['f1']:.2f}, hallucinations "
              f"{model.last_notes['llm_hallucinations']}, {len(sample) / seconds:.3f} "
              "abstracts/s", file=sys.stderr)
        if args.abbreviations:  # the same answers, scored again with abbreviation propagation
            model.abbreviations = not model.abbreviations
            again = model.predict(sample, answers=[a["answer"] for a in answers[name]])
            key = f"abbreviations={model.abbreviations}"
            runs[name][key] = _score(sample, again, model, args.bootstrap)
            print(f"  {key}: strict F1 {100 * runs[name][key]['strict']['f1']:.2f}",
                  file=sys.stderr)
            model.abbreviations = not model.abbreviations
    simulated = {}
    for value in args.simulate_patience or []:
        cut = []
        for answer in unstopped:
            end = repeat_cut(answer, value)
            cut.append(answer if end is None else answer[:end])
        predicted = model.predict(sample, answers=cut)
        kept = sum(len(model.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in cut)
        simulated[str(value)] = {**_score(sample, predicted, model, args.bootstrap),
                                 "answers_cut": sum(a != c for a, c in zip(unstopped, cut,
                                                                          strict=True)),
                                 "answer_tokens_kept": kept}
        print(f"loop stop after {value} (simulated): strict F1 "
              f"{100 * simulated[str(value)]['strict']['f1']:.2f}", file=sys.stderr)
    if args.answers:  # the raw answers, for reading the errors
        Path(args.answers).write_text(json.dumps(answers, indent=1), encoding="utf-8")
    return {"command": "generate", "machine": describe(), "model": str(args.model),
            "data": str(args.data), "sample": {"documents": len(sample), "of": len(gold),
                                               "seed": args.seed},
            "batch_size": model.batch_size, "max_new_tokens": model.max_new_tokens,
            "max_prompt_tokens": model.max_prompt_tokens, "runs": runs,
            "simulated_loop_stop": simulated}


def _score(sample, predicted, model, bootstrap: int) -> dict:
    from medner.scoring import evaluate

    report = evaluate(sample, predicted, modes=("strict",), bootstrap=bootstrap,
                      notes=model.last_notes)
    return {"strict": report.results["strict"].micro.to_dict(),
            "relations": (report.relations.micro.to_dict()
                          if report.relations and model.predicts_relations else None),
            "notes": dict(model.last_notes)}


def cmd_tokens(args) -> dict:
    """Prompt and answer (completion + end-of-turn) tokens of each template's examples: the
    tokens a training step processes and the tokens generation has to produce."""
    import statistics

    from medner.backends.llm.model import load_base
    from medner.backends.llm.train import build_examples
    from medner.backends.prompted.prompts import get_template
    from medner.io import read_corpus
    from medner.labels import SCHEMAS, apply_schema

    _, _, tokenizer = load_base(args.base_model, log=lambda _m: None)
    schema = SCHEMAS[args.labels]
    docs, _ = apply_schema(read_corpus(args.data).documents, schema)
    templates = {}
    for name in args.template:
        tasks = get_template(name).build_tasks(schema)
        examples, counts = build_examples(docs, tasks, tokenizer, schema, args.max_length)
        answers = [sum(e["completion_mask"]) for e in examples]
        totals = [len(e["input_ids"]) for e in examples]
        templates[name] = {
            "examples": counts, "answer_tokens_total": sum(answers),
            "answer_tokens_mean": round(statistics.mean(answers), 1),
            "answer_tokens_median": statistics.median(answers),
            "answer_tokens_max": max(answers),
            "example_tokens_total": sum(totals),
            "example_tokens_mean": round(statistics.mean(totals), 1),
            "padded_tokens": padded_tokens(totals, args.batch_size, args.seed)}
        print(f"{name}: {templates[name]['answer_tokens_mean']} answer tokens, "
              f"{templates[name]['example_tokens_mean']} tokens per example", file=sys.stderr)
    return {"command": "tokens", "machine": describe(), "data": str(args.data),
            "documents": len(docs), "base_model": args.base_model,
            "max_length": args.max_length, "templates": templates}


def padded_tokens(lengths: list[int], batch_size: int, seed: int) -> dict:
    """Tokens an epoch of right-padded micro-batches computes, in random order and in the
    order of transformers' LengthGroupedSampler (``group_by_length``, the training default)."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    def padded(order: list[int]) -> int:
        batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed))
    grouped = LengthGroupedSampler(batch_size, lengths=lengths,
                                   generator=torch.Generator().manual_seed(seed))
    return {"batch_size": batch_size, "real": sum(lengths),
            "random_order": padded(shuffled.tolist()), "group_by_length": padded(list(grouped))}


def _memory_child(args) -> dict:
    """A few LoRA optimiser steps on fixed-length real examples, timed; RSS read here."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from medner.backends.llm.model import load_base
    from medner.backends.llm.prompts import render_prompt
    from medner.backends.prompted.prompts import get_template
    from medner.core.device import default_bf16
    from medner.io import read_corpus
    from medner.labels import SCHEMAS, apply_schema

    bf16 = default_bf16()
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731
    torch.manual_seed(0)
    started = time.perf_counter()
    _, model, tok = load_base(args.base_model, quantize=args.quantize, bf16=bf16,
                              log=lambda _m: None)
    load_seconds = time.perf_counter() - started
    rss_loaded = rss()
    if args.quantize:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=["q_proj", "k_proj", "v_proj",
                                                             "o_proj", "gate_proj", "up_proj",
                                                             "down_proj"],
                                             task_type="CAUSAL_LM"))
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    schema = SCHEMAS["bc5cdr"]
    docs, _ = apply_schema(read_corpus(args.data).documents[:64], schema)
    task = get_template("entities-json").build_tasks(schema)[0]
    rows = []
    for d in docs:
        ids = tok(render_prompt(tok, task.user_message(d.text, schema)) + task.completion(d)
                  )["input_ids"]
        if len(ids) >= args.length:
            rows.append(ids[: args.length])
    batch = torch.tensor(rows[: args.batch])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    model.train()
    for _ in range(args.steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - t)
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return {"quantize": args.quantize, "activation_checkpointing": args.checkpointing,
            "bf16_autocast": bf16, "batch": list(batch.shape), "steps_timed": args.steps,
            "seconds_per_step": round(sum(times[1:]) / args.steps, 2),
            "first_step_seconds": round(times[0], 2), "load_seconds": round(load_seconds, 1),
            "rss_after_load_mb": round(rss_loaded, 1), "peak_rss_mb": round(rss(), 1),
            "parameter_memory_mb": round(weights_mb, 1), "loss": round(float(loss), 4)}


def cmd_memory(args) -> dict:
    results = []
    # plain LoRA, QLoRA, and plain LoRA recomputing activations (trl's default, ours is off)
    for quantize, checkpointing in ((None, False), ("4bit", False), (None, True)):
        cmd = [sys.executable, __file__, "_memory-child", "--data", str(args.data),
               "--base-model", args.base_model, "--steps", str(args.steps),
               "--batch", str(args.batch), "--length", str(args.length)]
        if quantize:
            cmd += ["--quantize", quantize]
        if checkpointing:
            cmd.append("--checkpointing")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout))
        print(json.dumps(results[-1]), file=sys.stderr)
    return {"command": "memory", "machine": describe(), "base_model": args.base_model,
            "runs": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="Also write the result here.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("-c", "--config")
    t.add_argument("--set", action="append", help="FIELD=VALUE (TOML value, else a bare string)")
    g = sub.add_parser("generate")
    g.add_argument("model")
    g.add_argument("--data", required=True)
    g.add_argument("--sample", type=int, default=24)
    g.add_argument("--seed", type=int, default=13)
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--bootstrap", type=int, default=1000)
    g.add_argument("--run", action="append", choices=("free", "stop", "constrained"),
                   help="Decoding settings to run (repeatable; default all three): free "
                   "(no loop stop), stop (loop stop), constrained (copying + loop stop).")
    g.add_argument("--answers", help="Write each run's raw answers here (JSON).")
    g.add_argument("--abbreviations", action="store_true", help="Also score each run's answers "
                   "with abbreviation propagation switched the other way from the model's.")
    g.add_argument("--simulate-patience", type=int, action="append", help="Also score the "
                   "answers decoded without the loop stop as a stop after N repeated lines "
                   "would have cut them (repeatable).")
    g.add_argument("--max-prompt-tokens", type=int, help="Split documents whose prompt is "
                   "longer than this at sentence ends, one prompt per piece (default: as the "
                   "model was saved).")
    k = sub.add_parser("tokens")
    k.add_argument("--data", required=True)
    k.add_argument("--template", action="append", required=True)
    k.add_argument("--labels", default="bc5cdr")
    k.add_argument("--base-model", default="smollm2-135m")
    k.add_argument("--max-length", type=int, default=1024)
    k.add_argument("--batch-size", type=int, default=4, help="Micro-batch size for the "
                   "padding count.")
    k.add_argument("--seed", type=int, default=13)
    for name in ("memory", "_memory-child"):
        m = sub.add_parser(name)
        m.add_argument("--data", required=True)
        m.add_argument("--base-model", default="smollm2-135m")
        m.add_argument("--steps", type=int, default=3)
        m.add_argument("--batch", type=int, default=4)
        m.add_argument("--length", type=int, default=256)
        m.add_argument("--quantize", default=None)
        m.add_argument("--checkpointing", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "_memory-child":
        print(json.dumps(_memory_child(args)))
        return
    handler = {"train": cmd_train, "generate": cmd_generate, "memory": cmd_memory,
               "tokens": cmd_tokens}
    _emit(handler[args.command](args), args.json)


if __name__ == "__main__":
    main()
