"""Windows in, per-word log-probabilities out, decoded to spans. Shared by training (dev
evaluation) and the loaded model, so the dev score is the score of what ``extract`` does."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from medner.backends.encoder.align import Tokenized, tags_to_word_spans, word_spans_to_spans
from medner.backends.encoder.decode import Decoder
from medner.backends.encoder.windows import (
    WindowItem,
    merge_windows,
    special_layout,
    window_input_ids,
    word_positions,
)
from medner.document import Span


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


PAD_MULTIPLE = 32


def padded_width(width: int, limit: int | None) -> int:
    """Batch width rounded up to a multiple of ``PAD_MULTIPLE`` (never past ``limit``).

    oneDNN caches kernels (with re-laid-out bf16 weights) per input shape; exact widths give
    hundreds of shapes over a large corpus, and resident memory can grow with them. Rounding
    keeps the set of shapes small.
    """
    rounded = -(-width // PAD_MULTIPLE) * PAD_MULTIPLE
    return min(rounded, limit) if limit else rounded


LogitsFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(input_ids, attention_mask), int64 arrays (batch, width) -> logits (batch, width, n_tags).

The torch model (``torch_logits``) or an ONNX Runtime session (``onnx.OnnxEncoder``)."""


def torch_logits(model, bf16: bool) -> LogitsFunction:
    import torch

    model.eval()
    # a model whose weights are already bf16 (``EncoderModel.load``) needs no autocast
    autocast = bf16 and next(model.parameters()).dtype == torch.float32

    def logits(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16,
                                                    enabled=autocast):
            out = model(input_ids=torch.from_numpy(input_ids).to(model.device),
                        attention_mask=torch.from_numpy(attention_mask).to(model.device)).logits
        return out.float().cpu().numpy()

    return logits


def run_windows(logits: LogitsFunction, tokenizer, tokenized: Sequence[Tokenized],
                items: Sequence[WindowItem], *, batch_size: int, max_width: int | None,
                progress: bool = False, desc: str = "extract") -> list[np.ndarray]:
    """Per-item (n_words_in_window, n_tags) log-probs; batches are sorted by length.

    ``max_width`` is the model's position limit (``None``: no limit) for ``padded_width``.
    """
    from tqdm.auto import tqdm

    prefix, _ = special_layout(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(items)), key=lambda k: items[k].end - items[k].start, reverse=True)
    out: list[np.ndarray | None] = [None] * len(items)
    bar = tqdm(total=len(items), desc=desc, unit="window", disable=not progress, leave=False)
    for b in range(0, len(order), batch_size):
        batch = order[b:b + batch_size]
        ids = [window_input_ids(tokenizer, tokenized[items[k].doc], items[k]) for k in batch]
        width = padded_width(max(len(x) for x in ids), max_width)
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, x in enumerate(ids):
            input_ids[r, :len(x)] = x
            mask[r, :len(x)] = 1
        logp = log_softmax(logits(input_ids, mask))
        for r, k in enumerate(batch):
            item = items[k]
            out[k] = logp[r, word_positions(tokenized[item.doc], item, prefix)]
        bar.update(len(batch))
    bar.close()
    return out  # type: ignore[return-value]


def propagate_mentions(text: str, tok: Tokenized, found: list[tuple[int, int, str]],
                       scores: list[float]) -> tuple[list[tuple[int, int, str]], list[float]]:
    """Tag other occurrences (same words, case-insensitive) of mentions found in the document.

    Abstracts repeat their entities; the model sometimes misses a repeat it tagged
    elsewhere. Only words that are not already inside a span are tagged.
    """
    if not found:
        return found, scores
    words = [text[a:b].lower() for a, b in tok.word_spans]
    known: dict[tuple[str, ...], tuple[str, float]] = {}
    for (first, last, label), sc in zip(found, scores, strict=True):
        known.setdefault(tuple(words[first:last + 1]), (label, sc))
    taken = np.zeros(len(words), dtype=bool)
    for first, last, _ in found:
        taken[first:last + 1] = True
    lengths = sorted({len(k) for k in known}, reverse=True)
    extra, extra_scores = [], []
    i = 0
    while i < len(words):
        for n in lengths:
            key = tuple(words[i:i + n])
            if len(key) == n and key in known and not taken[i:i + n].any():
                label, sc = known[key]
                extra.append((i, i + n - 1, label))
                extra_scores.append(sc)
                taken[i:i + n] = True
                i += n - 1
                break
        i += 1
    if not extra:
        return found, scores
    merged = sorted(zip(found + extra, scores + extra_scores, strict=True))
    return [m for m, _ in merged], [sc for _, sc in merged]


EDGE_PUNCTUATION = frozenset("-,.;:/")
"""Words that (nearly) never begin or end a mention: 3 of BC5CDR's 18,976 train and dev
gold spans do, and spans ending in them were all wrong in measured predictions."""
OPENERS, CLOSERS = frozenset("(["), frozenset(")]")


def trim_punctuation(text: str, tok: Tokenized, found: list[tuple[int, int, str]]
                     ) -> list[tuple[int, int, str]]:
    """Drop punctuation words from the edges of mentions ("tumors (" -> "tumors",
    "ciprofloxacin-" -> "ciprofloxacin"); a mention left with no word is dropped."""
    def word(w: int) -> str:
        return text[tok.word_spans[w][0]:tok.word_spans[w][1]]

    trimmed = []
    for first, last, label in found:
        while first <= last and word(first) in EDGE_PUNCTUATION | CLOSERS:
            first += 1
        while last >= first and word(last) in EDGE_PUNCTUATION | OPENERS:
            last -= 1
        if first <= last:
            trimmed.append((first, last, label))
    return trimmed


def join_fragments(text: str, tok: Tokenized, found: list[tuple[int, int, str]]
                   ) -> list[tuple[int, int, str]]:
    """Join neighbouring mentions of one type that only a single space separates.

    The model sometimes opens a new mention where the annotation continues the previous one
    ("iron" + "dextran" for "iron dextran", "Hemorrhagic" + "cystitis"); valid BIO allows
    it, so constrained decoding cannot forbid it. Two mentions written with nothing but one
    space between them are nearly always one name, while separate mentions are divided by
    punctuation or words (", ", " (", " and "). Measured on BC5CDR dev in docs/benchmarks.md.
    """
    joined: list[tuple[int, int, str]] = []
    for first, last, label in found:
        if joined:
            prev_first, prev_last, prev_label = joined[-1]
            gap = text[tok.word_spans[prev_last][1]:tok.word_spans[first][0]]
            if prev_label == label and prev_last + 1 == first and gap == " ":
                joined[-1] = (prev_first, last, label)
                continue
        joined.append((first, last, label))
    return joined


def decode_documents(texts: Sequence[str], tokenized: Sequence[Tokenized],
                     items: Sequence[WindowItem], logprobs: Sequence[np.ndarray],
                     decoder: Decoder, merge: str, propagate: bool = False,
                     join: bool = False) -> list[list[Span]]:
    per_doc: list[list[int]] = [[] for _ in texts]
    for k, item in enumerate(items):
        per_doc[item.doc].append(k)
    results = []
    n_tags = len(decoder.tags)
    for d, (text, tok) in enumerate(zip(texts, tokenized, strict=True)):
        ks = per_doc[d]
        if not ks or not tok.word_spans:
            results.append([])
            continue
        windows = [(items[k].start, items[k].end) for k in ks]
        word_lp = merge_windows(tok, windows, [logprobs[k] for k in ks], n_tags, merge)
        tags = decoder.decode(word_lp)
        found = trim_punctuation(text, tok, tags_to_word_spans(tags))
        if join:
            found = join_fragments(text, tok, found)
        index = {t: i for i, t in enumerate(decoder.tags)}
        scores = []
        for first, last, _ in found:
            probs = [np.exp(word_lp[w, index[tags[w]]]) for w in range(first, last + 1)]
            scores.append(float(np.mean(probs)))
        if propagate:
            found, scores = propagate_mentions(text, tok, found, scores)
        results.append(word_spans_to_spans(text, tok, found, scores))
    return results
