"""The GPU check of issue 28, as one program: train, extract, time; one JSON.

    python benchmarks/gpu_check.py bundle --data /work/shared/data --out .gpu
        (here, with the project's .venv: the files the GPU machine lacks, under 64 MiB in
        all; benchmarks/gpu_check.sh runs this first when .gpu is missing)
    python benchmarks/gpu_check.py run --bundle .gpu --json OUT.json [--slice N] [--only llm]
        (there, through benchmarks/gpu_check.sh; or here, on a CPU)

``run`` does, on the device the device rule picks (a GPU when torch sees one):

1. trains the shipped BC5CDR encoder recipe (``configs/bc5cdr.toml``) from the packaged
   MiniLM stored in bf16 (the trainer keeps fp32 master weights), selecting on BC5CDR dev;
2. extracts the whole dev set with the saved folder (``medner.load``, device auto) and scores
   it (strict micro F1): abstracts per second after a warm-up batch;
3. times LoRA training of the LLM backend (``configs/llm-bc5cdr.toml``, no dev evaluation)
   and batched constrained decoding of dev abstracts (each answer runs to max_new_tokens:
   the loop stop is off), on a model of SmolLM2-135M's shape
   with **random weights** (its 98 MB GGUF does not fit the GPU machine's 64 MiB of
   files): tokens per second and abstracts per second mean something, its answers do not,
   and no LLM accuracy is reported from this run.

``--slice N`` keeps N training and N dev documents and one epoch, to check the program on a
CPU in a few minutes; its figures are no benchmark. The JSON names the device, the torch
and transformers versions and every setting.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from machine import one_line  # benchmarks/machine.py, beside this script

REPO = Path(__file__).resolve().parents[1]
TRAIN_FILE = "CDR_TrainingSet.PubTator.txt"
DEV_FILE = "CDR_DevelopmentSet.PubTator.txt"
ENCODER_BASE = "minilm-l6-bf16"
LLM_SHAPE = "smollm2-shape"


# ---------------------------------------------------------------------------- the bundle


def cmd_bundle(args) -> dict[str, Any]:
    """The data, the encoder's weights in bf16 and SmolLM2's config and tokenizer."""
    import torch
    from safetensors.torch import load_file, save_file

    from medner.backends.llm.model import unpacked_folder
    from medner.basemodels import resolve

    sources = [Path(args.data) / "bc5cdr" / name for name in (TRAIN_FILE, DEV_FILE)]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise SystemExit(f"gpu_check.py bundle: --data {args.data} lacks {', '.join(missing)}")
    out = Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, out / "data" / source.name)
    encoder = Path(resolve("minilm-l6").path)
    target = out / ENCODER_BASE
    target.mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"):
        shutil.copyfile(encoder / name, target / name)
    weights = load_file(str(encoder / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v
               for k, v in weights.items()}, str(target / "model.safetensors"),
              metadata={"format": "pt"})
    llm = unpacked_folder(resolve("smollm2-135m"), print)
    shape = out / LLM_SHAPE
    shape.mkdir(exist_ok=True)
    for path in Path(llm).iterdir():
        if path.is_file() and not path.name.endswith(".safetensors"):
            shutil.copyfile(path, shape / path.name)
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*"))
             if p.is_file()}
    return {"bundle": str(out), "bytes": sum(sizes.values()), "files": sizes}


# ---------------------------------------------------------------------------- the run


def describe_device() -> dict[str, Any]:
    import torch
    import transformers

    from medner.core.device import native_bf16, resolve_device

    device = resolve_device()
    card = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {"device": device, "card": card, "cpu": one_line(), "native_bf16": native_bf16(device),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "python": platform.python_version()}


def sliced_data(bundle: Path, work: Path, documents: int | None) -> tuple[Path, Path]:
    """The train and dev files, cut to their first ``documents`` documents when asked."""
    if documents is None:
        return bundle / "data" / TRAIN_FILE, bundle / "data" / DEV_FILE
    from medner.io import read_corpus, write_corpus

    paths = []
    for name in (TRAIN_FILE, DEV_FILE):
        docs = read_corpus(bundle / "data" / name).documents[:documents]
        path = work / name
        write_corpus(docs, path, "pubtator")
        paths.append(path)
    return paths[0], paths[1]


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_predict(model, docs, warmup: int) -> tuple[list, float]:
    """Predictions of ``docs`` and the seconds they took, after a warm-up on a few (CUDA
    kernels, allocator and autocast caches are set up by the first call)."""
    model.predict(docs[:warmup])
    synchronize()
    started = time.perf_counter()
    predicted = model.predict(docs)
    synchronize()
    return predicted, time.perf_counter() - started


def check_encoder(args, train_file: Path, dev_file: Path, work: Path) -> dict[str, Any]:
    from medner.backends import load
    from medner.backends.encoder.config import load_config
    from medner.backends.encoder.train import train
    from medner.io import read_corpus
    from medner.labels import apply_schema
    from medner.scoring import score_spans

    overrides: dict[str, Any] = {"train": str(train_file), "dev": str(dev_file),
                                 "base_model": str(Path(args.bundle) / ENCODER_BASE),
                                 "out": str(work / "encoder")}
    if args.slice:
        overrides["epochs"] = 1
    config = load_config(REPO / "configs" / "bc5cdr.toml", overrides)
    started = time.perf_counter()
    result = train(config, log=lambda m: print(m, file=sys.stderr), progress=False)
    train_wall = time.perf_counter() - started
    meta = result.meta
    model = load(result.path)
    gold, _ = apply_schema(read_corpus(dev_file).documents, model.schema)
    predicted, seconds = timed_predict(model, gold, warmup=16)
    micro = score_spans(gold, predicted, mode="strict")["micro"]
    return {"config": "configs/bc5cdr.toml", "overrides": overrides,
            "train_seconds": meta["train_seconds"], "train_wall_seconds": round(train_wall, 1),
            "epochs_run": meta["epochs_run"], "global_steps": meta["global_steps"],
            "precision": meta["precision"], "trained_on": meta["trained_on"],
            "dev_f1_selected": round(100 * meta["dev_metrics"]["micro"]["f1"], 2),
            "extract": {"documents": len(gold), "seconds": round(seconds, 2),
                        "abstracts_per_second": round(len(gold) / seconds, 1),
                        "batch_size": model.batch_size, "bf16": model.bf16,
                        "strict_f1": round(100 * float(micro["f1"]), 2)}}


def random_llm(bundle: Path, folder: Path, seed: int) -> Path:
    """A SmolLM2-135M-shaped causal LM with random weights, saved as a base model folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = bundle / LLM_SHAPE
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape),
                                             dtype=torch.float32)
    model.save_pretrained(folder)
    for path in shape.iterdir():
        if path.name != "config.json" and not (folder / path.name).exists():
            shutil.copyfile(path, folder / path.name)
    return folder


def check_llm(args, train_file: Path, dev_file: Path, work: Path) -> dict[str, Any]:
    from medner.backends import load
    from medner.backends.llm.config import LLMConfig
    from medner.backends.llm.train import train
    from medner.io import read_corpus
    from medner.labels import apply_schema

    base = random_llm(Path(args.bundle), work / "smollm2-random", seed=13)
    overrides = {"train": str(train_file), "base_model": str(base), "out": str(work / "llm"),
                 "max_steps": args.llm_steps}
    # no dev set: evaluation would decode random answers, which times nothing asked for
    config = replace(LLMConfig.load(REPO / "configs" / "llm-bc5cdr.toml", overrides),
                     dev=None, eval_steps=None)
    result = train(config, log=lambda m: print(m, file=sys.stderr), progress=False)
    meta = result.meta
    # random weights loop at once: without the loop stop every answer runs to
    # max_new_tokens, a fixed amount of decoding to time
    model = load(result.path, constrained=True, repeat_patience=0)
    docs, _ = apply_schema(read_corpus(dev_file).documents[:args.llm_docs], model.schema)
    _, seconds = timed_predict(model, docs, warmup=2)
    stats = model.last_stats.to_dict()
    return {"config": "configs/llm-bc5cdr.toml",
            "overrides": {**overrides, "base_model": "SmolLM2-135M shape, random weights",
                          "dev": None},
            "lora": {"steps": meta["global_steps"], "seconds": meta["train_seconds"],
                     "seconds_per_step": meta["seconds_per_step"],
                     "tokens": meta["train_tokens"],
                     "tokens_per_second": meta["train_tokens_per_second"],
                     "precision": meta["precision"], "trained_on": meta["trained_on"]},
            "constrained_decoding": {
                "documents": len(docs), "seconds": round(seconds, 2),
                "abstracts_per_second": round(len(docs) / seconds, 3),
                "batch_size": model.batch_size, "bf16": model.bf16,
                "max_new_tokens": model.max_new_tokens, **stats}}


def cmd_run(args) -> dict[str, Any]:
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    started = time.perf_counter()
    result: dict[str, Any] = {"command": "gpu_check", "machine": describe_device(),
                              "slice": args.slice}
    train_file, dev_file = sliced_data(Path(args.bundle), work, args.slice)
    if args.only in (None, "encoder"):
        result["encoder"] = check_encoder(args, train_file, dev_file, work)
        print(json.dumps(result["encoder"]), file=sys.stderr)
    if args.only in (None, "llm"):
        result["llm"] = check_llm(args, train_file, dev_file, work)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="prepare the files the GPU machine lacks")
    b.add_argument("--data", required=True, help="the shared data folder (holds bc5cdr/)")
    b.add_argument("--out", default=".gpu")
    r = sub.add_parser("run", help="train, extract and time on this machine's device")
    r.add_argument("--bundle", default=".gpu")
    r.add_argument("--json", required=True, help="write the result here")
    r.add_argument("--work", default="/tmp/medner-gpu-check")
    r.add_argument("--slice", type=int, default=None,
                   help="N training and N dev documents, one epoch: a quick check of this "
                        "program, not a benchmark")
    r.add_argument("--only", choices=("encoder", "llm"), default=None)
    r.add_argument("--llm-steps", type=int, default=30, help="LoRA optimiser steps timed")
    r.add_argument("--llm-docs", type=int, default=64,
                   help="dev abstracts decoded with constrained decoding")
    args = parser.parse_args(argv)
    result = cmd_bundle(args) if args.command == "bundle" else cmd_run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.command == "run":
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
