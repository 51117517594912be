"""A document as the encoder reads it: sub-tokens with a marker token around every mention,
cut into windows when longer than the encoder's positions, and gathered back into one
embedding per token.

The marker (ATLOP's ``*``, Zhou et al. 2021) is inserted between sub-tokens rather than
into the text, so character offsets never shift. A long document is read in overlapping
windows; each token's embedding comes from the window where it sits farthest from an edge,
so every token has context on both sides wherever the document allows it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from medner.errors import ConfigError
from medner.relations.candidates import DocumentCandidates, Mention


@dataclass(frozen=True)
class EncodedDocument:
    """One document's marked token ids, its windows, and where its concepts' mentions are."""

    input_ids: tuple[int, ...]
    """Sub-token ids with markers, no special tokens."""
    windows: tuple[int, ...]
    """Start of each window in ``input_ids`` (each ``window_size`` tokens at most)."""
    owner: tuple[int, ...]
    """For each token, the window its embedding is taken from."""
    mention_ranges: tuple[tuple[int, int], ...]
    """[start marker, end marker] token range (end exclusive) of each mention."""
    head_mentions: tuple[tuple[int, ...], ...]
    """For each head concept (in ``DocumentCandidates.heads`` order), its mention indices."""
    tail_mentions: tuple[tuple[int, ...], ...]
    pair_index: tuple[tuple[int, int], ...]
    """(head concept index, tail concept index) of each candidate pair."""
    context_index: tuple[tuple[int, int, int], ...]
    """(head mention index, tail mention index, pair index) of each pair's closest mentions."""


def marker_id(tokenizer, marker: str) -> int:
    """The marker's token id; a tokenizer without it is a ConfigError (an unknown token would
    make every marker the [UNK] embedding, which carries no meaning)."""
    ids = tokenizer.convert_tokens_to_ids([marker])
    if not ids or ids[0] is None or ids[0] == tokenizer.unk_token_id:
        raise ConfigError(f"marker {marker!r}: the base model's tokenizer has no such token; "
                          "choose a marker from its vocabulary")
    return int(ids[0])


def token_range(starts: Sequence[int], ends: Sequence[int], mention: Mention) -> tuple[int, int]:
    """The sub-tokens overlapping the mention's characters (at least one token: a mention
    between tokens, e.g. of whitespace only, takes the next one)."""
    first = bisect_right(ends, mention.start)
    last = bisect_left(starts, mention.end)
    first = min(first, len(starts) - 1)
    return first, max(last, first + 1)


def mark(token_ids: Sequence[int], ranges: Sequence[tuple[int, int]], marker: int
         ) -> tuple[list[int], list[tuple[int, int]]]:
    """``token_ids`` with ``marker`` before and after each range; the ranges' new positions,
    markers included. Nested ranges nest their markers."""
    opening: dict[int, list[int]] = {}
    closing: dict[int, list[int]] = {}
    for k, (a, b) in enumerate(ranges):
        opening.setdefault(a, []).append(k)
        closing.setdefault(b - 1, []).append(k)
    marked: list[int] = []
    new_start = [0] * len(ranges)
    new_end = [0] * len(ranges)
    for position, token in enumerate(token_ids):
        for k in sorted(opening.get(position, ()), key=lambda k: -ranges[k][1]):  # outer first
            new_start[k] = len(marked)
            marked.append(marker)
        marked.append(token)
        for k in sorted(closing.get(position, ()), key=lambda k: -ranges[k][0]):  # inner first
            marked.append(marker)
            new_end[k] = len(marked)
    return marked, list(zip(new_start, new_end, strict=True))


def window_starts(length: int, size: int, overlap: int) -> list[int]:
    """Starts of windows of ``size`` tokens covering ``length`` tokens, neighbours sharing
    ``overlap`` tokens (the last window ends at the last token)."""
    if length <= size:
        return [0]
    step = max(1, size - overlap)
    starts = list(range(0, length - size, step))
    return [*starts, length - size]


def owners(length: int, starts: Sequence[int], size: int) -> list[int]:
    """For each token, the window in which it is farthest from either edge."""
    best = [0] * length
    margin = [-1] * length
    for w, start in enumerate(starts):
        for position in range(start, min(start + size, length)):
            room = min(position - start, start + size - 1 - position)
            if room > margin[position]:
                best[position], margin[position] = w, room
    return best


def encode(tokenizer, candidates: DocumentCandidates, marker: int, window_size: int,
           overlap: int) -> EncodedDocument:
    text = candidates.document.text
    # verbose=False: a text longer than the model's positions is expected here (windows)
    tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                       verbose=False)
    offsets = [tuple(o) for o in tokens["offset_mapping"]]
    mentions = candidates.mentions()
    if offsets:
        ranges = [token_range([a for a, _ in offsets], [b for _, b in offsets], m)
                  for m in mentions]
    else:  # an empty text has no mentions either
        ranges = []
    input_ids, mention_ranges = mark(tokens["input_ids"], ranges, marker)
    starts = window_starts(len(input_ids), window_size, overlap)
    index = {mention: k for k, mention in enumerate(mentions)}
    heads = list(candidates.heads)
    tails = list(candidates.tails)
    head_at = {concept: k for k, concept in enumerate(heads)}
    tail_at = {concept: k for k, concept in enumerate(tails)}
    return EncodedDocument(
        input_ids=tuple(input_ids), windows=tuple(starts),
        owner=tuple(owners(len(input_ids), starts, window_size)),
        mention_ranges=tuple(mention_ranges),
        head_mentions=tuple(tuple(index[m] for m in candidates.heads[c]) for c in heads),
        tail_mentions=tuple(tuple(index[m] for m in candidates.tails[c]) for c in tails),
        pair_index=tuple((head_at[h], tail_at[t]) for h, t in candidates.pairs),
        context_index=tuple((index[h], index[t], k) for k, closest in enumerate(candidates.contexts)
                            for h, t in closest))
