"""`medner train` under `accelerate launch` with 2 CPU processes (DDP over gloo) on a tiny
encoder and a tiny LLM (LoRA): it finishes, one process saves one model folder, and
medner.json has the format of a 1-process run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

from medner.backends.encoder.config import load_config  # noqa: E402 - after the skips
from medner.backends.encoder.tiny import save_tiny_base  # noqa: E402
from medner.backends.encoder.train import train  # noqa: E402
from medner.document import Document, Span  # noqa: E402
from medner.io import write_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DDP_CONFIG = REPO / "configs" / "accelerate" / "ddp-cpu-2proc.yaml"
TEXTS = ["she was suffering from Malaria and fever so she used amodiaquine",
         "pain on hip after a fall", "fever and Malaria again", "amodiaquine for the hip pain"]
MENTIONS = {"Malaria": "DISEASE", "fever": "SYMPTOM", "amodiaquine": "DRUG", "pain": "SYMPTOM",
            "hip": "BODY_PART"}
TRAIN_OPTIONS = {"max_steps": 6, "epochs": 1, "learning_rate": 5e-3, "warmup": 0,
                 "batch_size": 2, "max_length": 32, "predict_max_length": 32, "stride": 4,
                 "bf16": False, "seed": 3, "threads": 1, "patience": 0, "eval_steps": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def annotated(doc_id: str, text: str) -> Document:
    spans = tuple(Span(text.index(m), text.index(m) + len(m), label, m)
                  for m, label in MENTIONS.items() if m in text)
    return Document(doc_id, text, spans)


def shape(value):
    """The structure of a JSON value without its numbers and strings."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def launch_two_processes(tmp_path: Path, flags: list[str]) -> str:
    """Run ``medner train FLAGS`` on 2 CPU processes; their combined log."""
    medner_script = shutil.which("medner", path=str(Path(sys.executable).parent))
    if medner_script is None:
        pytest.skip("the medner console script is not installed next to this Python")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(DDP_CONFIG), "--main_process_port", str(free_port()), medner_script,
               "train", *flags, "--no-bf16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return log


def as_flags(options: dict) -> list[str]:
    return [f"--{name.replace('_', '-')}={value}" for name, value in options.items()
            if name != "bf16"]


def assert_like_one_process(out: Path, single: Path) -> tuple[dict, dict]:
    """The 2-process folder has the files and medner.json format of the 1-process one."""
    meta = json.loads((out / "medner.json").read_text(encoding="utf-8"))
    single_meta = json.loads((single / "medner.json").read_text(encoding="utf-8"))
    assert shape(meta) == shape(single_meta)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single.iterdir())
    return meta, single_meta


def test_two_process_ddp_saves_one_model_like_one_process(tmp_path: Path) -> None:
    base = save_tiny_base(tmp_path / "base", TEXTS)
    data = tmp_path / "train.jsonl"
    write_corpus([annotated(str(i), t) for i, t in enumerate(TEXTS * 2)], data, "jsonl")
    common = {"train": str(data), "dev": str(data), "base_model": str(base)}

    single = train(load_config(None, {**common, **TRAIN_OPTIONS, "out": str(tmp_path / "one")}),
                   log=lambda _: None, progress=False)

    out = tmp_path / "ddp"
    log = launch_two_processes(tmp_path, as_flags({**common, **TRAIN_OPTIONS, "out": str(out)}))

    assert log.count("train: 8 documents") == 2, log[-4000:]  # both processes trained
    assert log.count(f"saved {out}") == 1, log[-4000:]  # only the main process wrote it
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["base", "ddp", "one", "train.jsonl"]  # no .tmp / .train folders
    meta, single_meta = assert_like_one_process(out, single.path)
    assert meta["tags"] == single_meta["tags"] and meta["global_steps"] == 6
    assert meta["epochs_run"] == 2 * single_meta["epochs_run"]  # each step saw 2 batches


LLM_OPTIONS = {"template": "entities-json", "max_steps": 4, "eval_steps": 2, "batch_size": 1,
               "grad_accum": 1, "learning_rate": 8e-3, "warmup": 0.0, "scheduler": "constant",
               "lora_dropout": 0.0, "logging_steps": 1, "max_new_tokens": 16, "eval_sample": 2,
               "bf16": False, "seed": 0, "threads": 1}


def test_two_process_ddp_trains_one_llm_adapter_like_one_process(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    pytest.importorskip("trl")
    from test_llm_tiny import save_tiny_llm

    from medner.backends.llm.config import LLMConfig
    from medner.backends.llm.train import train as train_llm

    docs = [annotated(str(i), t) for i, t in enumerate(TEXTS)]
    base = save_tiny_llm(tmp_path / "base", [d.text for d in docs])
    data = tmp_path / "train.jsonl"
    write_corpus(docs, data, "jsonl")
    common = {"train": str(data), "dev": str(data), "base_model": str(base)}

    single = train_llm(LLMConfig(**common, **LLM_OPTIONS, out=str(tmp_path / "one")),
                       log=lambda _: None, progress=False)

    out = tmp_path / "ddp"
    log = launch_two_processes(tmp_path, ["--backend", "llm", *as_flags(
        {**common, **LLM_OPTIONS, "out": str(out)})])

    assert log.count(f"saved {out}") == 1, log[-4000:]
    assert not (tmp_path / "ddp.train").exists()
    meta, single_meta = assert_like_one_process(out, single.path)
    assert meta["global_steps"] == 4 and meta["weights"] == "adapter"
    assert meta["epochs_run"] == 2 * single_meta["epochs_run"]  # each step saw 2 batches
