"""Sentence embeddings of names: the packaged all-MiniLM-L6-v2 is a sentence-similarity
model (mean-pooled, unit-length vectors; cosine = dot product)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NAME_TOKENS = 32
"""Names are short; longer ones are cut (the head of a name carries its meaning)."""


class NameEmbedder:
    def __init__(self, base_model: str = "minilm-l6", *, batch_size: int = 256) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from medner.basemodels import resolve
        from medner.core.folder import loading_weights

        self.base_model = base_model
        self.batch_size = batch_size
        path = resolve(base_model).path
        with loading_weights(path):
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.dimension = int(self.model.config.hidden_size)

    def __call__(self, names: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per name."""
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(names), self.batch_size):
                batch = self.tokenizer(list(names[start:start + self.batch_size]), padding=True,
                                       truncation=True, max_length=NAME_TOKENS,
                                       return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32)


__all__ = ["NameEmbedder"]
