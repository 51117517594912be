"""A trained assertion classifier: ``predict(documents)`` sets each span's ``assertion``
attribute (present, absent, possible); ``save``/``load`` keep it as a self-describing folder.

The folder: the fine-tuned sequence classifier (``config.json`` with the values as its
``id2label``, ``model.safetensors``) and its tokenizer as transformers writes them, and
``medner.json`` with the training config and the held-out scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medner.assertion.config import AssertionConfig
from medner.assertion.inputs import span_inputs
from medner.core import folder as model_folder
from medner.core.device import resolve_bf16, resolve_device
from medner.document import ASSERTION, Document

BACKEND = "assertion"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class AssertionModel:
    """Classifies every span of a document as present, absent or possible (the values it
    was trained on)."""

    backend = BACKEND

    def __init__(self, network, tokenizer, config: AssertionConfig,
                 record: dict[str, Any] | None = None, *, path: str | None = None,
                 batch_size: int = 64, bf16: bool = False) -> None:
        self.network = network
        self.tokenizer = tokenizer
        self.config = config
        self.record = dict(record or {})
        """How the model was trained: base model, data, held-out scores, seconds."""
        self.path = path
        self.batch_size = batch_size
        self.bf16 = bf16

    @property
    def values(self) -> tuple[str, ...]:
        mapping = self.network.config.id2label
        return tuple(mapping[i] for i in range(len(mapping)))

    def encode(self, pairs: Sequence[tuple[str, str]]):
        labels, contexts = zip(*pairs, strict=True)
        return self.tokenizer(list(labels), list(contexts), truncation="only_second",
                              max_length=self.config.max_length, padding=True,
                              return_tensors="pt")

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> list[list[float]]:
        """Each (label phrase, marked context)'s probability of each value, in input order."""
        import torch

        order = sorted(range(len(pairs)), key=lambda k: len(pairs[k][1]), reverse=True)
        found: list[list[float]] = [[] for _ in pairs]
        self.network.eval()
        device = next(self.network.parameters()).device
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                    enabled=self.bf16):
            for first in range(0, len(order), self.batch_size):
                chunk = order[first:first + self.batch_size]
                batch = self.encode([pairs[k] for k in chunk]).to(device)
                logits = self.network(**batch).logits.float()
                for k, row in zip(chunk, torch.softmax(logits, -1).tolist(), strict=True):
                    found[k] = row
        return found

    def predict(self, documents: Iterable[Document]) -> list[Document]:
        """Copies of the documents whose spans carry an ``assertion`` attribute."""
        documents = list(documents)
        pairs = [span_inputs(doc, self.config) for doc in documents]
        flat = self.probabilities([p for doc_pairs in pairs for p in doc_pairs])
        values = self.values
        out, position = [], 0
        for doc in documents:
            spans = []
            for span in doc.spans:
                row = flat[position]
                position += 1
                spans.append(span.with_attribute(ASSERTION, values[row.index(max(row))]))
            out.append(doc.with_spans(spans))
        return out

    def write_files(self, folder: Path, out: str | Path) -> None:
        """Write the folder's files into ``folder`` (the staging folder of ``out``)."""
        self.network.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        model_folder.write_json(folder / model_folder.MEDNER_JSON, {
            **model_folder.folder_header(BACKEND, out), "values": list(self.values),
            "training_config": self.config.to_dict(), "training": self.record})

    def save(self, out: str | Path) -> Path:
        """Write the model folder atomically; returns its path."""
        self.path = str(model_folder.atomic_folder(
            out, lambda folder: self.write_files(folder, out)))
        return Path(self.path)

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None, device: str | None = None,
             bf16: bool | None = None, batch_size: int = 64) -> AssertionModel:
        """The classifier saved in ``path``, on ``device`` (default: auto, a GPU when there is
        one), in bf16 when ``bf16`` says so (default: ``MEDNER_PRECISION`` and the device's
        support)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        target = resolve_device(device, what=f"model folder {path}")
        meta = check_folder(Path(path))
        if threads:
            import torch

            torch.set_num_threads(threads)
        with model_folder.loading_weights(path):
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            network = AutoModelForSequenceClassification.from_pretrained(str(path))
        network = network.to(target).eval()
        return cls(network, tokenizer, AssertionConfig.from_dict(meta["training_config"]),
                   meta.get("training"), path=str(path), batch_size=batch_size,
                   bf16=resolve_bf16(bf16, target))


def check_folder(folder: Path) -> dict[str, Any]:
    """The folder's ``medner.json``, after checking it is a complete assertion model folder."""
    return model_folder.check_stage_folder(folder, BACKEND, "assertion model", REQUIRED_FILES,
                              ("training_config",))
