"""A linear-chain CRF over word tags, trained with the encoder (``crf = true``).

Without it, each word's tag is trained on its own and only decoding forbids invalid
sequences. The CRF trains the tag sequence as a whole: the loss is the negative
log-likelihood of the gold path against all valid paths, with learned start, transition
and end scores. Only these scores are extra; they are saved in ``medner.json`` (inference
``transitions``), so the weights stay a plain token-classification model that
``transformers.pipeline`` loads.

Written here because no well-kept library fits: pytorch-crf's last release is from 2019 and
it cannot forbid transitions, torch-struct's from 2021. The forward algorithm is twenty
lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medner.backends.encoder.decode import NEG, allowed_transitions

CRF_MODULE = "medner_crf"
"""Attribute name of the scores on the transformers model while training (and in its
checkpoints' state dict)."""

SCORE_SCALE = 100.0
"""The scores are stored divided by this, so that AdamW, whose steps are about the learning
rate whatever the gradient, moves them 100 times faster than the encoder's weights: at an
encoder learning rate of 3e-4 they could otherwise drift only a fraction of a unit in a
whole run. (A per-parameter learning rate would need a custom optimiser in the Trainer.)"""


def build_module(tags: Sequence[str], scheme: str):
    """The CRF's scores as a torch module with ``nll(logits, labels)``."""
    import torch
    from torch import nn

    _, trans_mask, _ = allowed_transitions(tags, scheme)

    class TransitionScores(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            n = len(tags)
            self.start = nn.Parameter(torch.zeros(n))
            self.transitions = nn.Parameter(torch.zeros(n, n))
            self.end = nn.Parameter(torch.zeros(n))
            # invalid transitions never score: the model learns over valid paths only. Start
            # and end stay open because a training window may begin or end inside a mention.
            self.register_buffer("mask", torch.tensor(trans_mask, dtype=torch.float32),
                                 persistent=False)

        def scores(self) -> tuple[Any, Any, Any]:
            return (self.start * SCORE_SCALE, self.transitions * SCORE_SCALE + self.mask,
                    self.end * SCORE_SCALE)

        def nll(self, logits, labels):
            """Summed negative log-likelihood of the labelled words' gold tags, per window.

            ``logits``: (batch, tokens, tags); ``labels``: (batch, tokens), the tag index on
            each word's first sub-token and -100 elsewhere.
            """
            emissions, gold, mask = word_rows(logits.float(), labels)
            start, trans, end = self.scores()
            batch = torch.arange(emissions.shape[0], device=emissions.device)
            # score of the gold path
            gold_score = start[gold[:, 0]] + emissions[batch, 0, gold[:, 0]]
            # log-sum-exp over all paths (forward algorithm)
            alpha = start + emissions[:, 0]
            for t in range(1, emissions.shape[1]):
                step = mask[:, t]
                gold_score = gold_score + step * (trans[gold[:, t - 1], gold[:, t]]
                                                  + emissions[batch, t, gold[:, t]])
                nxt = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + emissions[:, t]
                alpha = torch.where(step[:, None] > 0, nxt, alpha)
            last = mask.sum(1).long() - 1
            gold_score = gold_score + end[gold[batch, last]]
            log_partition = torch.logsumexp(alpha + end, dim=1)
            has_words = mask[:, 0] > 0
            return ((log_partition - gold_score) * has_words).sum()

    return TransitionScores()


def word_rows(logits, labels):
    """The rows of labelled words, packed to the left: (emissions, gold tags, mask)."""
    labelled = labels != -100
    counts = labelled.sum(1)
    width = max(int(counts.max()), 1) if counts.numel() else 1
    batch, _, n_tags = logits.shape
    emissions = logits.new_zeros((batch, width, n_tags))
    gold = labels.new_zeros((batch, width))
    mask = logits.new_zeros((batch, width))
    for row in range(batch):
        where = labelled[row].nonzero(as_tuple=True)[0]
        k = len(where)
        emissions[row, :k] = logits[row, where]
        gold[row, :k] = labels[row, where]
        mask[row, :k] = 1.0
    return emissions, gold, mask


def loss_function(model):
    """A ``compute_loss_func`` for transformers' Trainer: the CRF loss per labelled word."""

    def crf_loss(outputs, labels, num_items_in_batch=None):
        total = getattr(model, CRF_MODULE).nll(outputs.logits, labels)
        words = num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum()
        return total / words

    return crf_loss


def saved_scores(module) -> dict[str, list]:
    """The learned scores for ``medner.json`` (without the fixed mask of invalid moves)."""
    start, trans, end = (x.detach().float().cpu().numpy() for x in module.scores())
    trans = np.where(trans <= NEG / 2, 0.0, trans)
    return {"start": start.round(4).tolist(), "transitions": trans.round(4).tolist(),
            "end": end.round(4).tolist()}


__all__ = ["CRF_MODULE", "build_module", "loss_function", "saved_scores", "word_rows"]
