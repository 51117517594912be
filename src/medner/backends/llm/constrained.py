"""Constrained decoding: inside a copy region the model may only copy a substring of its input.

A task names its copy regions (``prompts.CopyRegion``: an opener regex and a terminator),
e.g. the value after ``"text": "`` up to the closing quote. At each step, for each row,
the constraint finds whether the answer so far is inside a region; if so, only tokens
that keep the region's content a substring of the input text, or that end the content with
(a prefix of) the terminator, keep their scores; a region that ends at a line end may
also end at end-of-sequence (the answer's last line). Outside regions (JSON syntax, labels,
``- `` bullets) the model is free.

Copies start and end at word boundaries, as grounding (``medner.ground``) wants them: a copy
that begins with a letter or digit may not begin inside a word of the input, and one that
ends with a letter or digit may only end where that word ends. Without this, the model
copied "nephritis" out of "glomerulonephritis", which grounding then drops as a
hallucination.

Comparison is on whitespace-normalised text (any whitespace run equals one space; leading
spaces of an item are free) because grounding treats whitespace the same way. Known limits:
a character that the tokenizer spells with several byte tokens (non-ASCII in byte-level BPE)
cannot be copied token by token, and an input containing the terminator (a ``"`` inside an
entity in JSON) cannot be copied past it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from medner.backends.prompted.prompts import CopyRegion

_WS = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")


def normalize(text: str) -> str:
    return _WS.sub(" ", text)


class Vocabulary:
    """Each token id's decoded string (normalised), computed once per tokenizer."""

    _cache: dict[int, Vocabulary] = {}

    def __init__(self, tokenizer, size: int) -> None:
        decoded = tokenizer.batch_decode([[i] for i in range(len(tokenizer))],
                                         skip_special_tokens=False,
                                         clean_up_tokenization_spaces=False)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.size = size
        # Raw strings rebuild the answer (a newline can end a region); normalised ones are
        # compared with the normalised input text.
        self.raw: list[str | None] = [s if i not in special and "\ufffd" not in s else None
                                      for i, s in enumerate(decoded)]
        self.raw += [None] * (size - len(self.raw))
        self.strings = [normalize(s) if s else None for s in self.raw]
        self.stripped = [s.lstrip() if s else None for s in self.strings]
        self._ends: dict[str, list[tuple[int, int, str]]] = {}

    @classmethod
    def of(cls, tokenizer, size: int) -> Vocabulary:
        key = id(tokenizer)
        vocab = cls._cache.get(key)
        if vocab is None or vocab.size != size:
            vocab = cls._cache[key] = cls(tokenizer, size)
        return vocab

    def ending(self, terminator: str) -> list[tuple[int, int, str]]:
        """(token id, k, normalised raw[:k]) where raw[k:] starts or completes the terminator."""
        if terminator not in self._ends:
            out = []
            for tid, s in enumerate(self.raw):
                if not s:
                    continue
                for k in range(len(s)):
                    tail = s[k:]
                    if terminator.startswith(tail) or tail.startswith(terminator):
                        out.append((tid, k, normalize(s[:k])))
                        break
            self._ends[terminator] = out
        return self._ends[terminator]

    def completing(self, rest: str) -> list[int]:
        """Tokens that continue a started terminator whose remainder is ``rest``."""
        key = "\0" + rest
        if key not in self._ends:
            self._ends[key] = [(tid, 0, "") for tid, s in enumerate(self.raw)
                               if s and (rest.startswith(s) or s.startswith(rest))]
        return [tid for tid, _, _ in self._ends[key]]


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # the characters of regex ``\w``, as grounding uses


def _copy_starts(item: str, text: str) -> list[int]:
    """Offsets of every occurrence of ``item`` in ``text`` (overlapping ones too) that does not
    begin inside a word; an item that starts with punctuation may begin anywhere."""
    if not item:
        return []
    free_start = not _is_word(item[0])
    starts = []
    at = text.find(item)
    while at != -1:
        if free_start or at == 0 or not _is_word(text[at - 1]):
            starts.append(at)
        at = text.find(item, at + 1)
    return starts


_SHORT = 12
"""Vocabulary strings up to this many characters are looked up in ``_short_substrings``."""


def _short_substrings(text: str) -> tuple[set[str], set[str]]:
    """The substrings of ``text`` of at most ``_SHORT`` characters (the empty one included):
    all of them, and those that begin where ``_copy_starts`` lets a copy of a word begin."""
    anywhere, at_word_start = {""}, {""}
    for start in range(len(text)):
        pieces = {text[start:end] for end in range(start + 1, min(start + _SHORT, len(text)) + 1)}
        anywhere |= pieces
        if start == 0 or not _is_word(text[start - 1]):
            at_word_start |= pieces
    return anywhere, at_word_start


def _is_whole_copy(item: str, text: str) -> bool:
    """``item`` occurs in ``text`` starting and ending at word boundaries."""
    if not item:
        return False
    free_end = not _is_word(item[-1])
    return any(free_end or at + len(item) == len(text) or not _is_word(text[at + len(item)])
               for at in _copy_starts(item, text))


@dataclass
class _Row:
    text: str
    """Normalised input text."""
    by_first: dict[str, list[tuple[int, str]]]
    """Tokens whose (left-stripped) string occurs in the text, bucketed by first character."""
    openers: list[tuple[int, str]]
    """Tokens that may begin a copy: their left-stripped string occurs at a word start."""


class CopyConstraint:
    """Masks the next-token scores of answers being decoded.

    ``texts[i]`` is the input text of answer ``i``; ``regions[i]`` its task's copy regions.
    An answer's index of the text is built when it first decodes and dropped by ``release``:
    one constraint serves every prompt of a ``generate`` call.
    """

    def __init__(self, tokenizer, texts: Sequence[str], regions: Sequence[Sequence[CopyRegion]],
                 vocab_size: int, eos_token_id: int | None) -> None:
        self.vocab = Vocabulary.of(tokenizer, vocab_size)
        self.regions = [[(re.compile(r.opener), r.terminator) for r in rs] for rs in regions]
        self.eos = eos_token_id
        self.texts = list(texts)
        self.rows: dict[int, _Row] = {}
        self.answers = ["" for _ in texts]
        self.seen = [0 for _ in texts]
        self.masked_steps = 0
        self.forced_exits = 0

    def row(self, i: int) -> _Row:
        """Answer ``i``'s index of its input text (built on first use)."""
        if i not in self.rows:
            self.rows[i] = self._index(self.texts[i])
        return self.rows[i]

    def release(self, i: int) -> None:
        """Forget answer ``i``'s text index once it has ended (it holds ~1 MB)."""
        self.rows.pop(i, None)

    def _index(self, text: str) -> _Row:
        ntext = normalize(text)
        # Most vocabulary strings are short: set lookups answer "occurs in the text" and
        # "occurs at a word start" for them. A substring search of the text for each of ~50k
        # strings took 0.4-0.8 s per abstract on a slow 2-core host.
        anywhere, at_word_start = _short_substrings(ntext)
        by_first: dict[str, list[tuple[int, str]]] = defaultdict(list)
        openers = []
        for tid, (s, stripped) in enumerate(zip(self.vocab.strings, self.vocab.stripped,
                                                strict=True)):
            if not s:
                continue
            if len(stripped) > _SHORT:
                occurs = stripped in ntext
                opens = occurs and bool(_copy_starts(stripped, ntext))
            else:  # "" is in both sets: whitespace may begin or continue a copy
                occurs = stripped in anywhere
                opens = stripped in (at_word_start if _is_word(stripped[:1]) else anywhere)
            if occurs:
                by_first[s[0]].append((tid, s))
                if opens:
                    openers.append((tid, s))
        return _Row(ntext, dict(by_first), openers)

    # ------------------------------------------------------------------ state
    def _open_region(self, i: int) -> tuple[str, str] | None:
        """(content so far, terminator) when row ``i``'s answer is inside a copy region."""
        answer = self.answers[i]
        best = None
        for pattern, terminator in self.regions[i]:
            for match in pattern.finditer(answer):
                if best is None or match.end() > best[0]:
                    best = (match.end(), terminator)
        if best is None:
            return None
        end, terminator = best
        content = answer[end:]
        if _closed(content, terminator):
            return None
        return content, terminator

    def allowed(self, i: int) -> list[int] | None:
        """Token ids row ``i`` may emit next, or ``None`` for no constraint."""
        state = self._open_region(i)
        if state is None:
            return None
        content, terminator = state
        row = self.row(i)
        ntext = row.text
        item = normalize(content).lstrip()
        out: list[int] = []
        starts = _copy_starts(item, ntext)
        if item == "" or starts:  # copying: continue the copy, or end it
            if item == "":  # every opener begins a copy: that is how they were chosen
                out += [tid for tid, _ in row.openers]
            else:
                # The next characters must continue an occurrence of item in the text.
                nexts = {ntext[at + len(item)] for at in starts if at + len(item) < len(ntext)}
                out += [tid for ch in nexts for tid, s in row.by_first.get(ch, ())
                        if not _join(item, s).strip()
                        or _copy_starts(_join(item, s).lstrip(), ntext)]
            for tid, _, copied in self.vocab.ending(terminator):
                if _is_whole_copy(_join(item, copied).strip(), ntext):
                    out.append(tid)
            if terminator == "\n" and self.eos is not None and _is_whole_copy(item.rstrip(), ntext):
                out.append(self.eos)  # the answer's last line ends at end-of-sequence
        # The item may end in a typed part of the terminator (" influences" of
        # " influences disease"): then only the rest of the terminator may follow.
        for j in range(1, len(terminator)):
            part = terminator[:j]
            head = item[: -len(part)] if item.endswith(part) else ""
            if _is_whole_copy(head.strip(), ntext):
                out += self.vocab.completing(terminator[j:])
        if not out:
            self.forced_exits += 1
            out = [tid for tid, k, _ in self.vocab.ending(terminator) if k == 0]
            if not out and self.eos is not None:
                out = [self.eos]
        return out

    def restrict(self, i: int, generated: Sequence[int], scores) -> None:
        """Mask row ``i``'s next-token ``scores`` (1-D, in place) to the tokens it may emit
        after its answer tokens ``generated``."""
        import torch

        if self.seen[i] < len(generated):
            strings = self.vocab.raw
            self.answers[i] += "".join(strings[t] or "" for t in generated[self.seen[i]:]
                                       if t < len(strings))
            self.seen[i] = len(generated)
        allowed = self.allowed(i)
        if allowed is None:
            return
        self.masked_steps += 1
        index = torch.tensor(sorted(set(allowed)), dtype=torch.long)
        kept = scores[index]
        scores.fill_(float("-inf"))
        scores[index] = kept


def _closed(content: str, terminator: str) -> bool:
    if terminator == '"':
        return re.search(r'(?<!\\)"', content) is not None
    return terminator in content


def _join(item: str, piece: str) -> str:
    """Concatenate normalised strings, keeping a single space where they meet."""
    if item.endswith(" ") and piece.startswith(" "):
        return item + piece[1:]
    return item + piece


__all__ = ["CopyConstraint", "Vocabulary", "normalize"]
