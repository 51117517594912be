"""LLM backend: LoRA/QLoRA instruction fine-tuning of a causal LM; answers grounded to spans.

config.py       the training config (one dataclass for the TOML file and the CLI flags)
prompts.py      prompts rendered through the model's chat template, and their length in tokens
generate.py     batched greedy decoding with the KV cache
constrained.py  a logits processor that only lets entity strings copy the input
model.py        base models (GGUF unpack + cache) and ``LLMModel`` for extract/predict
train.py        peft + trl SFTTrainer, generation-based dev F1 at each evaluation

The templates, answer parsers and the path from answers to Documents are shared with the
hosted backend: ``medner.backends.prompted``.
"""

from __future__ import annotations

from pathlib import Path

from medner.backends.llm.config import LLMConfig, field_help, field_types, load_config
from medner.backends.prompted.prompts import TEMPLATES, get_template


def load(path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
         threads: int | None = None, constrained: bool | None = None,
         device: str | None = None, repeat_patience: int | None = None,
         abbreviations: bool | None = None, max_prompt_tokens: int | None = None):
    """Load a trained LLM folder (an ``LLMModel``) on ``device`` (default: the CPU)."""
    from medner.backends.llm.model import LLMModel

    return LLMModel.load(path, bf16=bf16, batch_size=batch_size, threads=threads,
                         constrained=constrained, device=device,
                         repeat_patience=repeat_patience, abbreviations=abbreviations,
                         max_prompt_tokens=max_prompt_tokens)


def train(config: LLMConfig, *, log=print, progress: bool = True):
    """Train from ``config`` and write the model folder; returns a ``TrainResult``."""
    from medner.backends.llm.train import train as _train

    return _train(config, log=log, progress=progress)


__all__ = ["TEMPLATES", "LLMConfig", "field_help", "field_types", "get_template", "load",
           "load_config", "train"]
