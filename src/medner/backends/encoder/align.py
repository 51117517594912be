"""Character spans <-> word-level tags, through the fast tokenizer's offsets.

A *word* is what the tokenizer's pre-tokenizer produces (for BERT: runs of letters and
digits, and single punctuation marks), found from ``word_ids()`` and the offset mapping.
Tags live on words, the model is trained on each word's first sub-token, and predicted
spans are unions of whole words, so a prediction never splits a word.

Spans whose edges fall inside a word cannot be represented exactly; the policy
(``expand``/``contract``/``strict``) says what to do, and every case is counted.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from medner.document import Document, Span

OUTSIDE = "O"


def tag_names(labels: Sequence[str], scheme: str) -> list[str]:
    """The tag inventory: ``O`` first, then the scheme's prefixes per label."""
    prefixes = "BI" if scheme == "BIO" else "BILU"
    return [OUTSIDE] + [f"{p}-{label}" for label in labels for p in prefixes]


@dataclass
class Tokenized:
    """One document's sub-tokens (no special tokens) and the words they form."""

    input_ids: list[int]
    token_word: list[int]
    """Word index of every sub-token (-1 for a token with no word, rare)."""
    word_spans: list[tuple[int, int]]
    """Character (start, end) of each word."""
    word_first_token: list[int]


def tokenize_document(tokenizer, text: str) -> Tokenized:
    """Tokenize a whole text once, without truncation (windows are cut afterwards)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                    truncation=False, verbose=False)
    return tokenized_from_encoding(enc["input_ids"], enc["offset_mapping"], enc.word_ids())


def tokenize_documents(tokenizer, texts: Sequence[str]) -> list[Tokenized]:
    if not texts:
        return []
    encs = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True,
                     truncation=False, verbose=False)
    return [tokenized_from_encoding(encs["input_ids"][i], encs["offset_mapping"][i],
                                    encs.word_ids(i)) for i in range(len(texts))]


def tokenized_from_encoding(input_ids, offsets, word_ids) -> Tokenized:
    token_word: list[int] = []
    word_spans: list[tuple[int, int]] = []
    word_first: list[int] = []
    last_wid: object = object()
    for t, (wid, (a, b)) in enumerate(zip(word_ids, offsets, strict=True)):
        if wid is None:
            token_word.append(-1)
            continue
        if wid != last_wid or not word_spans:
            word_spans.append((a, b))
            word_first.append(t)
            last_wid = wid
        else:
            s, e = word_spans[-1]
            word_spans[-1] = (min(s, a) if b > a else s, max(e, b))
        token_word.append(len(word_spans) - 1)
    return Tokenized(list(input_ids), token_word, word_spans, word_first)


@dataclass
class AlignmentReport:
    """What happened to each gold span when it was turned into word tags."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, example: str | None = None) -> None:
        self.counts[kind] += 1
        if example is not None and kind != "aligned" and len(self.examples) < 20:
            self.examples.append(f"{kind}: {example}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def misaligned(self) -> int:
        return self.total - self.counts["aligned"]

    def merge(self, other: AlignmentReport) -> None:
        self.counts.update(other.counts)
        self.examples.extend(other.examples[: max(0, 20 - len(self.examples))])

    def to_dict(self) -> dict:
        return {"spans": self.total, "aligned": self.counts["aligned"],
                "not_aligned": self.misaligned, "counts": dict(sorted(self.counts.items())),
                "examples": self.examples}

    def summary(self) -> str:
        if not self.total:
            return "no spans"
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if k != "aligned")
        return (f"{self.counts['aligned']}/{self.total} spans align with token boundaries"
                + (f" ({parts})" if parts else ""))


def word_tags(doc: Document, tok: Tokenized, scheme: str, policy: str,
              report: AlignmentReport) -> list[str]:
    """One tag per word for the document's spans; misaligned spans follow ``policy``."""
    tags = [OUTSIDE] * len(tok.word_spans)
    starts = [s for s, _ in tok.word_spans]
    for span in sorted(doc.spans, key=lambda s: (s.start, -(s.end - s.start))):
        where = f"{doc.id} {span.start}-{span.end} {span.label} {span.text!r}"
        lo = bisect.bisect_right(starts, span.start) - 1
        lo = max(lo, 0)
        words = []
        for w in range(lo, len(tok.word_spans)):
            if tok.word_spans[w][0] >= span.end:
                break
            if tok.word_spans[w][1] > span.start:
                words.append(w)
        if not words:
            report.note("no token inside span (dropped)", where)
            continue
        first, last = words[0], words[-1]
        exact = tok.word_spans[first][0] == span.start and tok.word_spans[last][1] == span.end
        if not exact:
            if policy == "strict":
                report.note("edge inside a word (dropped, strict)", where)
                continue
            if policy == "contract":
                inside = [w for w in words if tok.word_spans[w][0] >= span.start
                          and tok.word_spans[w][1] <= span.end]
                if not inside:
                    report.note("edge inside a word (dropped, nothing left to contract to)",
                                where)
                    continue
                first, last = inside[0], inside[-1]
                report.note("edge inside a word (contracted)", where)
            else:
                report.note("edge inside a word (expanded)", where)
        if any(tags[w] != OUTSIDE for w in range(first, last + 1)):
            report.note("overlaps an earlier span (dropped)", where)
            continue
        if exact:
            report.note("aligned")
        n = last - first + 1
        if scheme == "BILOU" and n == 1:
            tags[first] = f"U-{span.label}"
            continue
        tags[first] = f"B-{span.label}"
        for w in range(first + 1, last + 1):
            tags[w] = f"I-{span.label}"
        if scheme == "BILOU":
            tags[last] = f"L-{span.label}"
    return tags


def tags_to_word_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first word, last word inclusive, label) for a valid BIO or BILOU tag sequence.

    Lenient on invalid sequences (a stray I- opens a span) so it can also read raw argmax.
    """
    out: list[tuple[int, int, str]] = []
    open_start, open_label = -1, ""
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, _, label = tag.partition("-")
        continues = prefix in ("I", "L") and open_label == label and open_start >= 0
        if not continues and open_start >= 0:
            out.append((open_start, i - 1, open_label))
            open_start, open_label = -1, ""
        if prefix in ("B", "U") or (prefix in ("I", "L") and not continues):
            open_start, open_label = i, label
        if prefix in ("L", "U") and open_start >= 0:
            out.append((open_start, i, open_label))
            open_start, open_label = -1, ""
    return out


def word_spans_to_spans(text: str, tok: Tokenized, items, scores=None) -> list[Span]:
    spans = []
    for k, (first, last, label) in enumerate(items):
        start, end = tok.word_spans[first][0], tok.word_spans[last][1]
        if end <= start:
            continue
        spans.append(Span(start, end, label, text[start:end],
                          score=None if scores is None else float(scores[k])))
    return spans
