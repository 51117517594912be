"""The relation network: the encoder reads each document's windows once, mentions are pooled
from their tokens, concepts from their mentions, and a small head scores each pair.

Pooling follows the document-level recipe (ATLOP, Zhou et al. 2021): a mention is the mean of
its tokens' embeddings, markers included; a concept is the logsumexp over its mentions, a
smooth maximum, so that one telling mention can carry a concept that is mentioned often.
The head reads ``[h_head; h_tail; h_head * h_tail; features]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from medner.relations.encoding import EncodedDocument


@dataclass
class Batch:
    """Documents' windows padded into one encoder input, and per document how to pool."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    documents: list[EncodedDocument]
    gathers: list[torch.Tensor]
    """Per document: each token's row in the flattened ``[windows * width]`` encoder output."""
    features: list[torch.Tensor]
    """Per document: ``[pairs, n_features]``."""


def make_batch(documents: Sequence[EncodedDocument], features: Sequence[Sequence[Sequence[float]]],
               tokenizer, window_size: int, n_features: int) -> Batch:
    rows: list[list[int]] = []
    gathers = []
    width = 2 + max(min(window_size, len(d.input_ids)) for d in documents)
    for doc in documents:
        first_row = len(rows)
        for start in doc.windows:
            rows.append([tokenizer.cls_token_id, *doc.input_ids[start:start + window_size],
                         tokenizer.sep_token_id])
        # +1: the [CLS] in front of each window
        gathers.append(torch.tensor([(first_row + w) * width + position - doc.windows[w] + 1
                                     for position, w in enumerate(doc.owner)], dtype=torch.long))
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        input_ids[r, :len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[r, :len(row)] = 1
    feature_tensors = [torch.tensor(list(f), dtype=torch.float32).reshape(-1, n_features)
                       for f in features]
    return Batch(input_ids, attention_mask, list(documents), gathers, feature_tensors)


class RelationNetwork(nn.Module):
    def __init__(self, encoder, n_features: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Sequential(nn.Linear(3 * hidden + n_features, hidden), nn.GELU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        """One logit per candidate pair, a tensor per document."""
        device = self.head[0].weight.device
        output = self.encoder(input_ids=batch.input_ids.to(device),
                              attention_mask=batch.attention_mask.to(device))
        states = output.last_hidden_state
        flat = states.reshape(-1, states.shape[-1])
        logits = []
        for doc, gather, features in zip(batch.documents, batch.gathers, batch.features,
                                         strict=True):
            if not doc.pair_index:
                logits.append(flat.new_zeros(0))
                continue
            tokens = flat[gather.to(device)]
            mentions = torch.stack([tokens[a:b].mean(dim=0) for a, b in doc.mention_ranges])
            heads = torch.stack([torch.logsumexp(mentions[list(m)], dim=0)
                                 for m in doc.head_mentions])
            tails = torch.stack([torch.logsumexp(mentions[list(m)], dim=0)
                                 for m in doc.tail_mentions])
            h = heads[[i for i, _ in doc.pair_index]]
            t = tails[[j for _, j in doc.pair_index]]
            pair = torch.cat([h, t, h * t, features.to(device, states.dtype)], dim=-1)
            logits.append(self.head(pair).squeeze(-1))
        return logits
