"""Constrained decoding: the best tag sequence that is valid BIO / BILOU (Viterbi).

Argmax per word produces fragments such as ``O I-Disease I-Disease`` or a ``B-Chemical``
followed by ``I-Disease``; scoring rewards whole, exact spans, so those invalid
transitions are forbidden outright and the most probable valid sequence is taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

NEG = -1e9


def _parts(tag: str) -> tuple[str, str]:
    prefix, _, label = tag.partition("-")
    return prefix, label


def allowed_transitions(tags: Sequence[str], scheme: str
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, transition, end) masks as additive scores: 0 allowed, -1e9 forbidden."""
    n = len(tags)
    trans = np.full((n, n), NEG, dtype=np.float64)
    start = np.full(n, NEG, dtype=np.float64)
    end = np.full(n, NEG, dtype=np.float64)
    for j, tag in enumerate(tags):
        p, lab = _parts(tag)
        if p in ("O", "B", "U"):
            start[j] = 0.0
        if scheme == "BIO" or p in ("O", "L", "U"):
            end[j] = 0.0
        for i, prev in enumerate(tags):
            pp, plab = _parts(prev)
            if scheme == "BIO":
                ok = p in ("O", "B") or (p == "I" and pp in ("B", "I") and plab == lab)
            else:
                inside = pp in ("B", "I")
                if p in ("I", "L"):
                    ok = inside and plab == lab
                else:
                    ok = not inside
            if ok:
                trans[i, j] = 0.0
    return start, trans, end


def viterbi(logprobs: np.ndarray, start: np.ndarray, trans: np.ndarray, end: np.ndarray
            ) -> list[int]:
    """Most probable tag indices for ``logprobs`` of shape (n_words, n_tags)."""
    n_words = logprobs.shape[0]
    if n_words == 0:
        return []
    lp = logprobs.astype(np.float64)
    score = start + lp[0]
    back = np.zeros((n_words, lp.shape[1]), dtype=np.int64)
    for t in range(1, n_words):
        cand = score[:, None] + trans  # prev x cur
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + lp[t]
    score = score + end
    path = [int(score.argmax())]
    for t in range(n_words - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


class Decoder:
    """Viterbi over allowed transitions for one tag inventory (masks built once).

    ``learned``: start, transition and end scores added to the masks. Only model folders
    trained with the former ``crf`` option (removed: no gain in docs/benchmarks.md) have them,
    under ``inference.transitions`` in ``medner.json``; applying them here keeps those folders
    predicting as they did.
    """

    def __init__(self, tags: Sequence[str], scheme: str, constrained: bool = True,
                 learned: Mapping[str, Sequence] | None = None) -> None:
        self.tags = list(tags)
        self.constrained = constrained or learned is not None
        self.start, self.trans, self.end = allowed_transitions(self.tags, scheme)
        if learned is not None:
            self.start = self.start + np.asarray(learned["start"], dtype=np.float64)
            self.trans = self.trans + np.asarray(learned["transitions"], dtype=np.float64)
            self.end = self.end + np.asarray(learned["end"], dtype=np.float64)

    def decode(self, logprobs: np.ndarray) -> list[str]:
        if not self.constrained:
            return [self.tags[i] for i in logprobs.argmax(axis=1)] if len(logprobs) else []
        return [self.tags[i] for i in viterbi(logprobs, self.start, self.trans, self.end)]
