"""Sentence embeddings of names: the packaged all-MiniLM-L6-v2 is a sentence-similarity
model (mean-pooled, unit-length vectors; cosine = dot product)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medner.errors import MednerError

if TYPE_CHECKING:
    from medner.linking.index import ConceptIndex

NAME_TOKENS = 32
"""Names are short; longer ones are cut (the head of a name carries its meaning)."""


class NameEmbedder:
    def __init__(self, base_model: str = "minilm-l6", *, batch_size: int = 256,
                 device: str | None = None, progress: bool = False) -> None:
        """``device`` (auto, cpu, cuda, ...; default auto) runs the model. It computes in
        fp32 on every device, as the index's name vectors were made: a query in another
        precision would move cosines near the linker's threshold. ``progress`` shows a bar
        while names are embedded (a full MeSH vocabulary takes minutes on a CPU)."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        from medner.basemodels import resolve
        from medner.core.device import resolve_device
        from medner.core.folder import loading_weights

        self.base_model = base_model
        self.batch_size = batch_size
        self.progress = progress
        self.known: dict[str, np.ndarray] = {}
        """Vectors taken from an earlier index (``reuse``): those names are not embedded."""
        path = resolve(base_model).path
        self.device = resolve_device(device, what=f"embedding model {base_model}")
        with loading_weights(path):
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path, dtype=torch.float32)
        self.model = self.model.to(self.device).eval()
        self.dimension = int(self.model.config.hidden_size)

    def reuse(self, index: ConceptIndex) -> int:
        """Take the name vectors of ``index``, built with this embedding model, so that its
        names are not embedded again (rebuilding a whole MeSH's index with another corpus:
        seconds instead of twenty minutes). Returns how many names it knows."""
        made_with = index.meta.get("embedding_model")
        if made_with != self.base_model:
            raise MednerError(f"the index to reuse was embedded with {made_with!r}, not "
                              f"{self.base_model!r}: its vectors would not match new ones")
        self.known.update(zip((e.name for e in index.entries), index.embeddings, strict=True))
        return len(self.known)

    def __call__(self, names: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per name. Each distinct name is embedded once, in
        batches of names of similar length (mentions repeat, and a batch pads to its
        longest name); names with a ``known`` vector are not embedded."""
        import torch
        from tqdm.auto import tqdm

        distinct = sorted(set(names) - self.known.keys(), key=lambda name: (len(name), name))
        rows = []
        with torch.inference_mode(), tqdm(total=len(distinct), desc="embedding names",
                                          unit="name", disable=not self.progress) as bar:
            for start in range(0, len(distinct), self.batch_size):
                batch = self.tokenizer(distinct[start:start + self.batch_size], padding=True,
                                       truncation=True, max_length=NAME_TOKENS,
                                       return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
                bar.update(len(rows[-1]))
        if not names:
            return np.zeros((0, self.dimension), dtype=np.float32)
        made = dict(zip(distinct, np.concatenate(rows), strict=True)) if rows else {}
        return np.stack([made[name] if name in made else self.known[name] for name in names])


__all__ = ["NameEmbedder"]
