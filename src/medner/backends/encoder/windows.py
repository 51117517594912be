"""Overlapping windows over a long document, their model inputs, and merging their word
predictions back.

Nothing is truncated: a document longer than one window is covered by several windows
that share ``stride`` tokens, cut at word starts where possible. Each word's prediction
then comes from the window where it has the most context on both sides (``center``), or
from the average over all windows that hold it (``mean``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medner.backends.encoder.align import Tokenized


def make_windows(tok: Tokenized, max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of at most ``max_tokens`` covering every token."""
    n = len(tok.input_ids)
    if n == 0:
        return []
    if n <= max_tokens:
        return [(0, n)]
    firsts = tok.word_first_token  # sorted

    def snap_down(t: int, floor: int) -> int:
        """The last word start <= t that is > floor, or t when there is none."""
        i = bisect.bisect_right(firsts, t) - 1
        if i >= 0 and firsts[i] > floor:
            return firsts[i]
        return t

    windows = []
    start = 0
    while True:
        end = min(start + max_tokens, n)
        if end < n:
            end = snap_down(end, start)  # do not cut a word unless it is longer than a window
        windows.append((start, end))
        if end >= n:
            return windows
        nxt = snap_down(max(end - stride, start + 1), start)
        start = max(nxt, start + 1)


def window_words(tok: Tokenized, start: int, end: int) -> tuple[int, int]:
    """Words ``[first, last)`` whose first sub-token lies in the token range."""
    firsts = tok.word_first_token
    return bisect.bisect_left(firsts, start), bisect.bisect_left(firsts, end)


def merge_windows(tok: Tokenized, windows: list[tuple[int, int]],
                  window_logprobs: list[np.ndarray], n_tags: int,
                  mode: str = "center") -> np.ndarray:
    """Per-word log-probabilities ``(n_words, n_tags)`` from per-window word log-probs.

    ``window_logprobs[k]`` holds one row per word of ``window_words(tok, *windows[k])``.
    """
    n_words = len(tok.word_spans)
    out = np.full((n_words, n_tags), -1e4, dtype=np.float32)
    out[:, 0] = 0.0  # words no window covers (cannot happen; kept safe) read as O
    if mode == "mean":
        total = np.zeros((n_words, n_tags), dtype=np.float64)
        count = np.zeros(n_words, dtype=np.int64)
        for (s, e), lp in zip(windows, window_logprobs, strict=True):
            a, b = window_words(tok, s, e)
            total[a:b] += np.exp(lp)
            count[a:b] += 1
        seen = count > 0
        out[seen] = np.log(np.maximum(total[seen] / count[seen, None], 1e-12))
        return out
    best = np.full(n_words, -1, dtype=np.int64)
    for (s, e), lp in zip(windows, window_logprobs, strict=True):
        a, b = window_words(tok, s, e)
        if b <= a:
            continue
        first_tok = np.asarray(tok.word_first_token[a:b])
        context = np.minimum(first_tok - s, e - 1 - first_tok)
        better = context > best[a:b]
        idx = np.nonzero(better)[0]
        out[a + idx] = lp[idx]
        best[a + idx] = context[idx]
    return out


@dataclass(frozen=True)
class WindowItem:
    doc: int
    start: int
    end: int
    word_a: int
    word_b: int


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one sequence."""
    cached = getattr(tokenizer, "_medner_special", None)
    if cached is not None:
        return cached
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            result = (list(full[:i]), list(full[i + len(plain):]))
            break
    else:  # a tokenizer that rewrites the text itself: add nothing rather than guess
        result = ([], [])
    tokenizer._medner_special = result
    return result


def special_layout(tokenizer) -> tuple[int, int]:
    """(tokens the tokenizer puts before a sequence, total special tokens added)."""
    before, after = special_tokens(tokenizer)
    return len(before), len(before) + len(after)


def window_items(tokenized: Sequence[Tokenized], max_length: int, stride: int,
                 n_special: int) -> list[WindowItem]:
    items = []
    for d, tok in enumerate(tokenized):
        for s, e in make_windows(tok, max_length - n_special, stride):
            a, b = window_words(tok, s, e)
            items.append(WindowItem(d, s, e, a, b))
    return items


def window_input_ids(tokenizer, tok: Tokenized, item: WindowItem) -> list[int]:
    before, after = special_tokens(tokenizer)
    return before + tok.input_ids[item.start:item.end] + after


def word_positions(tok: Tokenized, item: WindowItem, prefix: int) -> np.ndarray:
    return np.asarray(tok.word_first_token[item.word_a:item.word_b], dtype=np.int64) \
        - item.start + prefix
