"""Base models (packaged GGUF, folder, hub id) and a trained LLM folder loaded for prediction.

GGUF weights (the packaged ``smollm2-135m``) are unpacked by transformers with the ``gguf``
package (~20-30 s); the unpacked copy is cached as safetensors under ``MEDNER_CACHE``
(default ``~/.cache/medner``), keyed by the GGUF file's path, size and mtime, so later
loads take about a second.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from medner.abbreviations import propagate_abbreviations
from medner.backends.llm.config import DEFAULT_REPEAT_PATIENCE
from medner.backends.llm.generate import GenerationStats, generate
from medner.backends.llm.parse import GroundStats, Parsed, ground_document
from medner.backends.llm.prompts import (
    CHEMICAL,
    DISEASE,
    RELATION,
    Task,
    get_template,
    render_prompt,
)
from medner.basemodels import ResolvedModel, resolve
from medner.cache import cache_root
from medner.core.device import resolve_bf16
from medner.document import Document, documents_from_texts
from medner.errors import ConfigError, MednerError
from medner.labels import LabelSchema

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


def load_base(name: str, *, quantize: str | None = None, bf16: bool = False, log=print):
    """(resolved name, model, tokenizer) for a base model; ``quantize="4bit"`` is QLoRA's NF4."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolve(name)
    folder = unpacked_folder(base, log) if base.source != "hub" else base.path
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if quantize == "4bit":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("--quantize 4bit needs bitsandbytes: pip install "
                              "bitsandbytes==0.50.2 torch==2.13.0") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32)
        kwargs["device_map"] = "cpu"
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


class LLMModel:
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
        self.bf16 = resolve_bf16(bf16)
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
        """The raw answers of the latest call, one per (document, chunk, task) prompt."""
        self.last_stats = GenerationStats()

    @property
    def schema(self) -> LabelSchema:
        return LabelSchema.from_dict(self.meta["schema"])

    @property
    def predicts_relations(self) -> bool:
        """Whether the template asks for relations (else a relation score means nothing)."""
        return any(task.kind == "relations" for task in self.tasks)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.schema.labels

    @classmethod
    def load(cls, path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
             threads: int | None = None, constrained: bool | None = None,
             device: str | None = None, repeat_patience: int | None = None,
             abbreviations: bool | None = None,
             max_prompt_tokens: int | None = None) -> LLMModel:
        """``device`` ("cuda", "cuda:1", ...) puts the model there (default: CPU);
        ``repeat_patience`` overrides the saved loop stop (0 turns it off), ``abbreviations``
        the saved abbreviation propagation, ``max_prompt_tokens`` the prompt length above
        which documents are cut into pieces."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from medner.core.device import move_to_device
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
        model = move_to_device(model, device, folder)
        loaded = cls(model, tokenizer, meta, bf16=bf16, batch_size=batch_size,
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
        documents = list(documents)
        pieces = [self._chunks(d.text) for d in documents]
        jobs: list[tuple[int, int, Task]] = []  # (document, chunk, task)
        for i, chunks in enumerate(pieces):
            for c in range(len(chunks)):
                jobs += [(i, c, task) for task in self.tasks]
        prompts, copy_inputs = [], []
        for i, c, task in jobs:
            start, end = pieces[i][c]
            chunk = documents[i].text[start:end]
            prompts.append(render_prompt(self.tokenizer, task.user_message(chunk, self.schema)))
            copy_inputs.append((chunk, task.copy_regions))
        if answers is not None:
            if len(answers) != len(prompts):
                raise MednerError(f"{len(answers)} answers given for {len(prompts)} prompts")
            answers, stats = list(answers), GenerationStats(prompts=len(prompts))
        else:
            answers, stats = generate(
                self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size, bf16=self.bf16,
                copy_inputs=copy_inputs if self.constrained else None,
                repeat_patience=self.repeat_patience, progress=progress)
        self.last_answers = answers
        parsed: list[list[tuple[int, Parsed]]] = [[] for _ in documents]
        for (i, c, task), answer in zip(jobs, answers, strict=True):
            parsed[i].append((c, task.parse(answer, self.schema)))
        out, total = [], GroundStats()
        bad = unknown = 0
        for doc, chunks, results in zip(documents, pieces, parsed, strict=True):
            grounded, doc_stats = [], GroundStats()
            for c, p in results:
                # Each chunk is grounded in its own text; offsets are shifted when merging.
                start, end = chunks[c]
                g, gstats = ground_document(Document(doc.id, doc.text[start:end]), p.entities,
                                            p.pairs, relation_labels=(CHEMICAL, DISEASE),
                                            relation=RELATION)
                grounded.append((start, g))
                doc_stats.add(gstats)
            total.add(doc_stats)
            doc_bad = sum(p.bad_lines for _, p in results)
            doc_unknown = sum(p.unknown_labels for _, p in results)
            bad += doc_bad
            unknown += doc_unknown
            counts = {"hallucinations": doc_stats.hallucinations,
                      "hallucinated_relations": doc_stats.hallucinated_relations,
                      "bad_lines": doc_bad, "unknown_labels": doc_unknown,
                      "chunks": len(chunks)}
            predicted = _merge_chunks(doc, grounded)
            if self.abbreviations:
                predicted = propagate_abbreviations(predicted)
            out.append(replace(predicted, metadata={**doc.metadata, "llm": counts}))
        self.last_stats = stats
        self.last_notes = {
            "llm_hallucinations": total.hallucinations,
            "llm_hallucinated_relations": total.hallucinated_relations,
            "llm_relation_entities_added": total.relation_entities_added,
            "llm_bad_lines": bad,
            "llm_unknown_labels": unknown,
            "llm_truncated_answers": stats.truncated,
            "llm_repeat_stops": stats.repeat_stops,
            "llm_chunked_documents": sum(1 for p in pieces if len(p) > 1),
            "llm_forced_exits": stats.forced_exits,
            "llm_new_tokens": stats.new_tokens,
        }
        return out

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        """New Documents holding the predicted spans (and relations), one per text."""
        return self.predict(documents_from_texts(texts, ids), progress=progress)

    # ------------------------------------------------------------------ long inputs
    def _chunks(self, text: str) -> list[tuple[int, int]]:
        """(start, end) pieces whose prompts fit ``max_prompt_tokens``: sentence ends first."""
        return text_pieces(text, lambda s: prompt_tokens(self.tokenizer, self.tasks,
                                                         self.schema, s),
                           self.max_prompt_tokens)


def prompt_tokens(tokenizer, tasks: Sequence[Task], schema: LabelSchema, text: str) -> int:
    """Tokens in the longest of the tasks' prompts for ``text``."""
    return max(len(tokenizer(render_prompt(tokenizer, task.user_message(text, schema)))
                   ["input_ids"]) for task in tasks)


def text_pieces(text: str, measure, limit: int) -> list[tuple[int, int]]:
    """``split_text`` without the whitespace between sentences, which belongs to no piece."""
    pieces = split_text(text, measure, limit)
    if len(pieces) == 1:
        return pieces
    trimmed = []
    for a, b in pieces:
        piece = text[a:b]
        a2 = a + len(piece) - len(piece.lstrip())
        b2 = b - (len(piece) - len(piece.rstrip()))
        if a2 < b2:
            trimmed.append((a2, b2))
    return trimmed


def split_text(text: str, measure, limit: int) -> list[tuple[int, int]]:
    """Cut ``text`` so that ``measure(piece) <= limit``: at sentence ends, else at spaces."""
    if not text or measure(text) <= limit:
        return [(0, len(text))]
    inside = [c for c in (m.end() for m in re.finditer(r"[.!?]\s+", text)) if 0 < c < len(text)]
    if not inside:
        inside = [c for c in (m.end() for m in re.finditer(r"\s+", text)) if 0 < c < len(text)]
    if not inside:
        if measure("") > limit:
            raise MednerError(f"the prompt template alone takes {measure('')} tokens, more than "
                              f"max_prompt_tokens={limit}; raise max_prompt_tokens")
        raise MednerError(f"a piece of {len(text)} characters without a space does not fit "
                          f"max_prompt_tokens={limit}; raise max_prompt_tokens")
    middle = min(inside, key=lambda c: abs(c - len(text) / 2))
    left = split_text(text[:middle], measure, limit)
    right = split_text(text[middle:], measure, limit)
    return left + [(a + middle, b + middle) for a, b in right]


def _merge_chunks(doc: Document, grounded: list[tuple[int, Document]]) -> Document:
    from medner.document import Relation, Span

    if len(grounded) == 1 and grounded[0][0] == 0:
        g = grounded[0][1]
        return Document(doc.id, doc.text, g.spans, g.relations, dict(doc.metadata))
    spans, relations = [], []
    for n, (shift, g) in enumerate(grounded):
        ids = {}
        for s in g.spans:
            new_id = f"C{n}{s.id}"
            ids[s.id] = new_id
            spans.append(Span(s.start + shift, s.end + shift, s.label, s.text, id=new_id))
        relations += [Relation(r.label, ids[r.head], ids[r.tail], args="span")
                      for r in g.relations]
    ordered = sorted(spans, key=lambda s: (s.start, s.end, s.label))
    rename = {s.id: f"T{k}" for k, s in enumerate(ordered, start=1)}
    spans = [replace(s, id=rename[s.id]) for s in ordered]
    relations = list(dict.fromkeys(Relation(r.label, rename[r.head], rename[r.tail], args="span")
                                   for r in relations))
    return Document(doc.id, doc.text, tuple(spans), tuple(relations), dict(doc.metadata))


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


__all__ = ["LLMModel", "load_base", "prompt_tokens", "split_text",
           "text_pieces", "unpacked_folder"]
