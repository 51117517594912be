"""A trained encoder loaded from its folder: ``extract(texts)`` and ``predict(documents)``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from medner.backends.encoder.align import tokenize_documents
from medner.backends.encoder.decode import Decoder
from medner.backends.encoder.folder import check_folder
from medner.backends.encoder.predict import (
    cpu_supports_bf16,
    decode_documents,
    run_windows,
    special_layout,
    window_items,
)
from medner.document import Document
from medner.errors import MednerError
from medner.labels import LabelSchema


class EncoderModel:
    """Token classification over words, with window merging and constrained decoding."""

    backend = "encoder"

    def __init__(self, model, tokenizer, meta: dict[str, Any], *, bf16: bool | None = None,
                 batch_size: int | None = None, path: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        inference = meta.get("inference", {})
        self.scheme: str = meta["scheme"]
        self.tags: list[str] = list(meta["tags"])
        limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        self.max_length = min(int(inference.get("max_length", 256)), limit)
        self.stride = int(inference.get("stride", 32))
        self.window_merge = str(inference.get("window_merge", "center"))
        self.batch_size = batch_size or int(inference.get("batch_size", 32))
        self.bf16 = cpu_supports_bf16() if bf16 is None else bf16
        self.decoder = Decoder(self.tags, self.scheme, bool(inference.get("constrained", True)))
        self.propagate = bool(inference.get("propagate", False))
        _, self.n_special = special_layout(tokenizer)

    @property
    def schema(self) -> LabelSchema:
        s = self.meta["schema"]
        return LabelSchema(s["name"], tuple(s["labels"]), dict(s.get("mapping", {})))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.schema.labels

    @classmethod
    def load(cls, path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
             threads: int | None = None) -> EncoderModel:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        folder = Path(path)
        meta = check_folder(folder)
        if meta.get("backend") != "encoder":
            raise MednerError(f"{folder / 'medner.json'}: backend is {meta.get('backend')!r}, "
                              "not 'encoder'")
        if threads:
            torch.set_num_threads(threads)
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # keep stdout/stderr clean for `medner extract`
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModelForTokenClassification.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise MednerError(f"model folder {folder}: cannot load weights or tokenizer: "
                              f"{exc}") from None
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if not getattr(tokenizer, "is_fast", False):
            raise MednerError(f"model folder {folder}: the tokenizer is not a fast tokenizer "
                              "(tokenizer.json); medner needs character offsets")
        if model.config.num_labels != len(meta["tags"]):
            raise MednerError(f"model folder {folder}: config.json has {model.config.num_labels}"
                              f" labels but medner.json lists {len(meta['tags'])} tags")
        return cls(model, tokenizer, meta, bf16=bf16, batch_size=batch_size, path=str(folder))

    def predict_spans(self, texts: Sequence[str], *, progress: bool = False) -> list[list]:
        tokenized = tokenize_documents(self.tokenizer, list(texts))
        items = window_items(tokenized, self.max_length, self.stride, self.n_special)
        logprobs = run_windows(self.model, self.tokenizer, tokenized, items,
                               batch_size=self.batch_size, bf16=self.bf16, progress=progress)
        return decode_documents(texts, tokenized, items, logprobs, self.decoder, self.window_merge,
                                self.propagate)

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        """New Documents holding the predicted spans, one per text."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if ids is not None and len(ids) != len(texts):
            raise MednerError(f"extract: {len(ids)} ids for {len(texts)} texts")
        doc_ids = list(ids) if ids is not None else [str(i + 1) for i in range(len(texts))]
        spans = self.predict_spans(texts, progress=progress)
        return [Document(doc_ids[i], texts[i]).with_spans(spans[i]) for i in range(len(texts))]

    def predict(self, documents: Iterable[Document], *, progress: bool = False) -> list[Document]:
        """Copies of the documents (same id, text, metadata) with predicted spans instead."""
        documents = list(documents)
        spans = self.predict_spans([d.text for d in documents], progress=progress)
        return [replace(d, relations=()).with_spans(s) for d, s in zip(documents, spans,
                                                                          strict=True)]


