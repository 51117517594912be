"""A trained encoder loaded from its folder: ``extract(texts)`` and ``predict(documents)``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from medner.abbreviations import propagate_all
from medner.backends.encoder.align import tokenize_documents
from medner.backends.encoder.decode import Decoder
from medner.backends.encoder.folder import check_folder
from medner.backends.encoder.members import ensemble_logits, member_paths
from medner.backends.encoder.predict import (
    LogitsFunction,
    decode_documents,
    run_windows,
    torch_logits,
)
from medner.backends.encoder.windows import special_layout, window_items
from medner.core.device import batch_size_for, resolve_bf16, resolve_device
from medner.core.folder import SchemaFromMeta, loading_weights
from medner.document import Document, documents_from_texts
from medner.errors import MednerError

RUNTIMES = ("torch", "onnx")


class EncoderModel(SchemaFromMeta):
    """Token classification over words, with window merging and constrained decoding.

    ``model`` is the transformers model (runtime "torch") or an ``onnx.OnnxEncoder``.
    """

    backend = "encoder"

    def __init__(self, model, tokenizer, meta: dict[str, Any], *, bf16: bool | None = None,
                 batch_size: int | None = None, path: str | None = None,
                 runtime: str = "torch", abbreviations: bool | None = None,
                 members: Sequence = ()) -> None:
        self.model = model
        self.members = list(members)  # an ensemble's other models, averaged with ``model``
        self.runtime = runtime
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        inference = meta.get("inference", {})
        self.scheme: str = meta["scheme"]
        self.tags: list[str] = list(meta["tags"])
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        self.max_length = min(int(inference.get("max_length", 256)), self.max_positions or 512)
        self.stride = int(inference.get("stride", 32))
        self.window_merge = str(inference.get("window_merge", "center"))
        self.batch_size = batch_size or int(inference.get("batch_size", 16))
        # bf16: weights cast once by load(), autocast for a model still training; the ONNX
        # graphs run in their own precision
        self.bf16 = runtime == "torch" and (
            bf16 if bf16 is not None else resolve_bf16(None, str(model.device)))
        # "transitions": the learned scores of a folder trained with the former CRF option
        self.decoder = Decoder(self.tags, self.scheme, bool(inference.get("constrained", True)),
                               inference.get("transitions"))
        self.propagate = bool(inference.get("propagate", False))
        # folders saved before these options existed predicted without them
        self.join_fragments = bool(inference.get("join_fragments", False))
        self.abbreviations = (bool(inference.get("abbreviations", False))
                              if abbreviations is None else abbreviations)
        _, self.n_special = special_layout(tokenizer)

    @classmethod
    def load(cls, path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
             threads: int | None = None, runtime: str = "torch",
             device: str | None = None, abbreviations: bool | None = None) -> EncoderModel:
        """``runtime="onnx"`` runs the folder's ``medner export-onnx`` graph in ONNX Runtime;
        ``device`` (auto, cpu, cuda, cuda:1, ...) puts the torch model there (default: auto,
        a GPU when there is one; there a larger default batch);
        ``abbreviations`` overrides the saved abbreviation propagation."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        if runtime not in RUNTIMES:
            raise MednerError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if runtime == "onnx" and device not in (None, "auto", "cpu"):
            raise MednerError("--runtime onnx runs on the CPU; leave out the device or use "
                              "the torch runtime")
        folder = Path(path)
        target = ("cpu" if runtime == "onnx"
                  else resolve_device(device, what=f"model folder {folder}"))
        meta = check_folder(folder)
        if meta.get("backend") != "encoder":
            raise MednerError(f"{folder / 'medner.json'}: backend is {meta.get('backend')!r}, "
                              "not 'encoder'")
        member_folders = member_paths(folder, meta)
        if member_folders and runtime == "onnx":
            raise MednerError(f"{folder} is an ensemble; --runtime onnx runs single models only")
        model = None
        if runtime == "onnx":
            from medner.backends.encoder.onnx import OnnxEncoder

            model = OnnxEncoder.load(folder, threads=threads)
        elif threads:
            import torch

            torch.set_num_threads(threads)
        with loading_weights(folder):
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            if model is None:
                model = AutoModelForTokenClassification.from_pretrained(str(folder))
            members = [AutoModelForTokenClassification.from_pretrained(str(f))
                       for f in member_folders]
        if not getattr(tokenizer, "is_fast", False):
            raise MednerError(f"model folder {folder}: the tokenizer is not a fast tokenizer "
                              "(tokenizer.json); medner needs character offsets")
        for where, net in [(folder, model), *zip(member_folders, members, strict=True)]:
            if net.config.num_labels != len(meta["tags"]):
                raise MednerError(f"model folder {where}: config.json has "
                                  f"{net.config.num_labels} labels but medner.json lists "
                                  f"{len(meta['tags'])} tags")
        saved = int(meta.get("inference", {}).get("batch_size", 16))
        loaded = cls(model, tokenizer, meta, bf16=resolve_bf16(bf16, target),
                     batch_size=batch_size or batch_size_for(target, saved, on_gpu=128),
                     path=str(folder), runtime=runtime, abbreviations=abbreviations,
                     members=members)
        if runtime == "torch":
            import torch

            def placed(net):
                net = net.to(target)
                if loaded.bf16:
                    # This object only predicts: bf16 weights once spare autocast re-casting
                    # them at every layer call (speed and F1 measured in docs/benchmarks.md)
                    net = net.to(torch.bfloat16)
                return net

            loaded.model = placed(model)
            loaded.members = [placed(net) for net in members]
        return loaded

    def logits_function(self) -> LogitsFunction:
        """Window logits of this model (an ensemble: the log of its mean probabilities)."""
        if self.runtime == "onnx":
            return self.model
        if self.members:
            return ensemble_logits([torch_logits(net, self.bf16)
                                    for net in [self.model, *self.members]])
        return torch_logits(self.model, self.bf16)

    def predict_spans(self, texts: Sequence[str], *, progress: bool = False) -> list[list]:
        tokenized = tokenize_documents(self.tokenizer, list(texts))
        items = window_items(tokenized, self.max_length, self.stride, self.n_special)
        logprobs = run_windows(self.logits_function(), self.tokenizer, tokenized, items,
                               batch_size=self.batch_size, max_width=self.max_positions,
                               progress=progress)
        return decode_documents(texts, tokenized, items, logprobs, self.decoder, self.window_merge,
                                self.propagate, self.join_fragments)

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        """New Documents holding the predicted spans, one per text."""
        return self.predict(documents_from_texts(texts, ids), progress=progress)

    def predict(self, documents: Iterable[Document], *, progress: bool = False) -> list[Document]:
        """Copies of the documents (same id, text, metadata) with predicted spans instead."""
        documents = list(documents)
        spans = self.predict_spans([d.text for d in documents], progress=progress)
        predicted = [replace(d, relations=()).with_spans(s) for d, s in zip(documents, spans,
                                                                               strict=True)]
        return propagate_all(predicted) if self.abbreviations else predicted


