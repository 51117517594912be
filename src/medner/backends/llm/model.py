"""Base models (packaged GGUF, folder, hub id) and a trained LLM folder loaded for prediction.

Prediction takes the prompted backends' one path (``medner.backends.prompted.answers``:
pieces, prompts, parsed and grounded answers, counts); what is the local model's own is how
it measures prompts (its tokenizer) and answers them (``generate``, optionally constrained).

GGUF weights (the packaged ``smollm2-135m``) are unpacked by transformers with the ``gguf``
package (~20-30 s); the unpacked copy is cached as safetensors under ``MEDNER_CACHE``
(default ``~/.cache/medner``), keyed by the GGUF file's path, size and mtime, so later
loads take about a second.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medner.backends.llm.config import DEFAULT_REPEAT_PATIENCE
from medner.backends.llm.generate import GenerationStats, generate
from medner.backends.llm.prompts import prompt_tokens, render_prompt
from medner.backends.prompted.answers import (
    Bounds,
    Prompt,
    plan_prompts,
    read_answers,
    text_pieces,
)
from medner.backends.prompted.prompts import Task, get_template
from medner.basemodels import ResolvedModel, resolve
from medner.cache import cache_root
from medner.core.device import batch_size_for, resolve_bf16, resolve_device
from medner.core.folder import SchemaFromMeta
from medner.document import Document, documents_from_texts
from medner.errors import ConfigError, MednerError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def unpacked_folder(base: ResolvedModel, log=print) -> Path:
    """A transformers folder for ``base``; GGUF files are unpacked once and cached."""
    if not base.gguf_file:
        return Path(base.path)
    gguf = Path(base.path) / base.gguf_file
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    name = re.sub(r"[^\w.-]+", "-", Path(base.gguf_file).stem)[:60]
    target = cache_root() / "unpacked" / f"{name}-{key.hexdigest()[:12]}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medner.core.folder import atomic_folder

    log(f"unpacking {gguf.name} once into {target} (GGUF -> safetensors, ~30 s)")
    tokenizer = AutoTokenizer.from_pretrained(base.path, gguf_file=base.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(base.path, gguf_file=base.gguf_file,
                                                 dtype=torch.float32)
    # The weights are dequantized now; without this save_pretrained tries to re-quantize.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(folder: Path) -> None:
        model.save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(str(folder))

    return atomic_folder(target, write)


def load_base(name: str, *, quantize: str | None = None, bf16: bool = False,
              device: str = "cpu", log=print):
    """(resolved name, model, tokenizer) for a base model to train on ``device``;
    ``quantize="4bit"`` is QLoRA's NF4 (with double quantization)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolve(name)
    folder = unpacked_folder(base, log) if base.source != "hub" else base.path
    on_gpu = device.startswith("cuda")
    # A GPU trains LoRA on bf16 weights (half the memory and traffic); the CPU keeps fp32
    # weights under bf16 autocast, the path its benchmarks measured.
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 and on_gpu else torch.float32,
                              "attn_implementation": "sdpa"}
    if quantize == "4bit":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("--quantize 4bit needs bitsandbytes: pip install "
                              "bitsandbytes==0.50.2 torch==2.13.0") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32)
        # bitsandbytes quantizes while loading, so the weights must land where they train
        kwargs["device_map"] = {"": device}
    elif quantize is not None:
        raise ConfigError(f"--quantize {quantize!r} is not supported; use 4bit or leave it out")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except OSError as exc:
        where = "the Hugging Face Hub (no network?)" if base.source == "hub" else folder
        raise MednerError(f"cannot load base model {name!r} from {where}: {exc}") from None
    prepare_tokenizer(tokenizer)
    return base, model, tokenizer


def prepare_tokenizer(tokenizer) -> None:
    if tokenizer.eos_token_id is None:
        raise ConfigError("the base model's tokenizer has no end-of-sequence token; generation "
                          "could not stop")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


# ---------------------------------------------------------------------------- the loaded model


class LLMModel(SchemaFromMeta):
    """A fine-tuned causal LM that answers a prompt template; answers become spans.

    ``last_notes`` holds the counts of the latest ``predict``/``extract`` call
    (hallucinations, bad lines, ...), ready for ``medner.evaluate(..., notes=...)``; each
    predicted Document also carries its own counts in ``metadata["llm"]``.
    """

    backend = "llm"

    def __init__(self, model, tokenizer, meta: dict[str, Any], *, bf16: bool | None = None,
                 batch_size: int | None = None, constrained: bool | None = None,
                 repeat_patience: int | None = None, abbreviations: bool | None = None,
                 max_prompt_tokens: int | None = None, path: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        inference = meta.get("inference", {})
        self.max_new_tokens = int(inference.get("max_new_tokens", 384))
        if max_prompt_tokens is None:
            max_prompt_tokens = int(inference.get("max_prompt_tokens", 1536))
        if max_prompt_tokens < 32:
            raise MednerError(f"max_prompt_tokens must be at least 32, not {max_prompt_tokens}")
        self.max_prompt_tokens = max_prompt_tokens
        """Documents whose prompt is longer are cut at sentence ends, one prompt a piece."""
        self.batch_size = batch_size or int(inference.get("batch_size", 8))
        self.constrained = (bool(inference.get("constrained", False)) if constrained is None
                            else constrained)
        self.bf16 = bf16 if bf16 is not None else resolve_bf16(None, str(model.device))
        if repeat_patience is None:
            repeat_patience = int(inference.get("repeat_patience", DEFAULT_REPEAT_PATIENCE))
        if repeat_patience < 0:
            raise MednerError(f"repeat_patience must be >= 0 (0 turns the loop stop off), "
                              f"not {repeat_patience}")
        self.repeat_patience = repeat_patience
        """End an answer after this many repeated lines in a row (a greedy loop); 0: never."""
        # folders saved before the option existed predicted without it
        self.abbreviations = (bool(inference.get("abbreviations", False))
                              if abbreviations is None else abbreviations)
        self.template = get_template(meta["template"])
        self.tasks: list[Task] = self.template.build_tasks(self.schema)
        self.last_notes: dict[str, int] = {}
        self.last_answers: list[str] = []
        """The raw answers of the latest call, one per (document, piece, task) prompt."""
        self.last_stats = GenerationStats()

    @classmethod
    def load(cls, path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
             threads: int | None = None, constrained: bool | None = None,
             device: str | None = None, repeat_patience: int | None = None,
             abbreviations: bool | None = None,
             max_prompt_tokens: int | None = None) -> LLMModel:
        """``device`` (auto, cpu, cuda, cuda:1, ...) puts the model there (default: auto, a
        GPU when there is one; there a larger default batch); ``repeat_patience`` overrides
        the saved loop stop (0 turns it off), ``abbreviations`` the saved abbreviation
        propagation, ``max_prompt_tokens`` the prompt length above which documents are cut
        into pieces."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from medner.core.folder import read_medner_json

        folder = Path(path)
        meta = read_medner_json(folder)
        if meta.get("backend") != "llm":
            raise MednerError(f"{folder / 'medner.json'}: backend is {meta.get('backend')!r}, "
                              "not 'llm'")
        if threads:
            torch.set_num_threads(threads)
        weights = meta.get("weights", "adapter")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            if weights == "merged":
                model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
            else:
                adapter = folder / meta.get("adapter", ".")
                missing = [f for f in ADAPTER_FILES if not (adapter / f).is_file()]
                if missing:
                    raise MednerError(f"model folder {folder} is incomplete: missing "
                                      f"{', '.join(missing)} in {adapter}")
                model = load_adapter_merged(adapter, meta["base_model"]["name"])
        except (OSError, ValueError) as exc:
            raise MednerError(f"model folder {folder}: cannot load weights or tokenizer: "
                              f"{exc}") from None
        prepare_tokenizer(tokenizer)
        target = resolve_device(device, what=f"model folder {folder}")
        model = model.to(target)
        saved = int(meta.get("inference", {}).get("batch_size", 8))
        loaded = cls(model, tokenizer, meta, bf16=resolve_bf16(bf16, target),
                     batch_size=batch_size or batch_size_for(target, saved, on_gpu=64),
                     constrained=constrained, repeat_patience=repeat_patience,
                     abbreviations=abbreviations, max_prompt_tokens=max_prompt_tokens,
                     path=str(folder))
        if loaded.bf16:
            # Cast once: autocast would re-cast every frozen fp32 weight at every decoding
            # step, which costs more than the bf16 matmuls save.
            loaded.model = loaded.model.to(torch.bfloat16)
        return loaded

    # ------------------------------------------------------------------ prediction
    def predict(self, documents: Iterable[Document], *, progress: bool = False,
                answers: Sequence[str] | None = None) -> list[Document]:
        """Copies of the documents (same id, text) with predicted spans and relations.

        ``answers`` (one per prompt, as in ``last_answers`` of a call on the same documents)
        are parsed and grounded instead of generating: saved answers, cut or edited, are
        scored again without the cost of decoding.
        """
        plan = plan_prompts(documents, self.tasks, self._pieces)
        if answers is None:
            answers, stats = self._generate(plan.prompts, progress)
        else:
            answers, stats = list(answers), GenerationStats(prompts=len(plan.prompts))
        predicted, counts = read_answers(plan, answers, self.schema, key="llm",
                                         abbreviations=self.abbreviations)
        self.last_answers, self.last_stats = answers, stats
        self.last_notes = {
            **counts.notes(),
            "llm_truncated_answers": stats.truncated,
            "llm_repeat_stops": stats.repeat_stops,
            "llm_chunked_documents": plan.cut_documents,
            "llm_forced_exits": stats.forced_exits,
            "llm_new_tokens": stats.new_tokens,
        }
        return predicted

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        """New Documents holding the predicted spans (and relations), one per text."""
        return self.predict(documents_from_texts(texts, ids), progress=progress)

    def _generate(self, prompts: Sequence[Prompt],
                  progress: bool) -> tuple[list[str], GenerationStats]:
        """The model's answers to the prompts, rendered through its chat template."""
        rendered = [render_prompt(self.tokenizer, p.task.user_message(p.text, self.schema))
                    for p in prompts]
        copy_inputs = ([(p.text, p.task.copy_regions) for p in prompts] if self.constrained
                       else None)
        return generate(self.model, self.tokenizer, rendered, max_new_tokens=self.max_new_tokens,
                        batch_size=self.batch_size, bf16=self.bf16, copy_inputs=copy_inputs,
                        repeat_patience=self.repeat_patience, progress=progress)

    def _pieces(self, text: str) -> list[Bounds]:
        """Pieces of ``text`` whose prompts fit ``max_prompt_tokens``: sentence ends first."""
        return text_pieces(text, lambda s: prompt_tokens(self.tokenizer, self.tasks,
                                                         self.schema, s),
                           self.max_prompt_tokens)


def load_adapter_merged(folder: Path, base_name: str):
    """Base model + the folder's LoRA adapter, merged in memory for fast generation."""
    from peft import PeftModel

    try:
        _, base, _ = load_base(base_name, log=lambda _msg: None)
    except (ConfigError, MednerError) as exc:
        raise MednerError(f"model folder {folder} holds a LoRA adapter for the base model "
                          f"{base_name!r}, which cannot be loaded here ({exc}). Install or copy "
                          "the base model, or retrain with --merge to get a self-contained "
                          "folder.") from None
    model = PeftModel.from_pretrained(base, str(folder))
    return model.merge_and_unload()


# prompt_tokens and text_pieces: llm/train.py imports them from here
__all__ = ["LLMModel", "load_base", "unpacked_folder"]
