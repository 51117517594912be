"""The relation network: the encoder reads each document's windows once, mentions are pooled
from their tokens, concepts from their mentions, and a small head scores each pair.

Pooling follows the document-level recipe (ATLOP, Zhou et al. 2021): a mention is the mean of
its tokens' embeddings, markers included; a concept is the logsumexp over its mentions, a
smooth maximum, so that one telling mention can carry a concept that is mentioned often.
A concept embedding is the same whatever the partner, so each pair also gets its own
context, in the place of ATLOP's attention-weighted localized context: the mean embedding of
the tokens between its closest mentions (see ``candidates.closest_mentions``), averaged over
those mention pairs; zero where the mentions touch. The head reads
``[h_head; h_tail; h_head * h_tail; context; features]``.
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
    mention_bounds: list[torch.Tensor]
    """Per document: ``[mentions, 2]`` token start and end (exclusive) of each mention."""
    contexts: list[torch.Tensor]
    """Per document: ``[context pairs, 3]`` rows of ``EncodedDocument.context_index``."""
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
    bounds = [torch.tensor(d.mention_ranges, dtype=torch.long).reshape(-1, 2) for d in documents]
    contexts = [torch.tensor(d.context_index, dtype=torch.long).reshape(-1, 3)
                for d in documents]
    return Batch(input_ids, attention_mask, list(documents), gathers, bounds, contexts,
                 feature_tensors)


class RelationNetwork(nn.Module):
    def __init__(self, encoder, n_features: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Sequential(nn.Linear(4 * hidden + n_features, hidden), nn.GELU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        """One logit per candidate pair, a tensor per document."""
        device = self.head[0].weight.device
        output = self.encoder(input_ids=batch.input_ids.to(device),
                              attention_mask=batch.attention_mask.to(device))
        states = output.last_hidden_state
        flat = states.reshape(-1, states.shape[-1])
        logits = []
        for doc, gather, bounds, contexts, features in zip(
                batch.documents, batch.gathers, batch.mention_bounds, batch.contexts,
                batch.features, strict=True):
            if not doc.pair_index:
                logits.append(flat.new_zeros(0))
                continue
            tokens = flat[gather.to(device)]
            # prefix[k] is the sum of the first k tokens: any range's mean in one subtraction
            # (in float32: a bf16 running sum over hundreds of tokens would lose the small
            # differences that a mention's mean is made of)
            prefix = nn.functional.pad(tokens.float().cumsum(dim=0), (0, 0, 1, 0))
            starts, ends = bounds[:, 0].to(device), bounds[:, 1].to(device)
            mentions = (prefix[ends] - prefix[starts]) / (ends - starts).unsqueeze(1)
            heads = torch.stack([torch.logsumexp(mentions[list(m)], dim=0)
                                 for m in doc.head_mentions])
            tails = torch.stack([torch.logsumexp(mentions[list(m)], dim=0)
                                 for m in doc.tail_mentions])
            h = heads[[i for i, _ in doc.pair_index]]
            t = tails[[j for _, j in doc.pair_index]]
            context = pair_context(prefix, starts, ends, contexts.to(device), len(doc.pair_index))
            pair = torch.cat([h, t, h * t, context, features.to(device)], dim=-1)
            logits.append(self.head(pair).squeeze(-1))
        return logits


def pair_context(prefix: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor,
                 contexts: torch.Tensor, n_pairs: int) -> torch.Tensor:
    """``[n_pairs, hidden]``: per pair, the mean over its context mention pairs of the mean
    embedding of the tokens between the two mentions (zero where they touch or overlap)."""
    first, second, pair = contexts[:, 0], contexts[:, 1], contexts[:, 2]
    low = torch.minimum(ends[first], ends[second])
    high = torch.maximum(torch.maximum(starts[first], starts[second]), low)
    between = (prefix[high] - prefix[low]) / (high - low).clamp(min=1).unsqueeze(1)
    total = prefix.new_zeros(n_pairs, prefix.shape[1]).index_add(0, pair, between)
    counts = torch.bincount(pair, minlength=n_pairs).clamp(min=1).unsqueeze(1)
    return total / counts
