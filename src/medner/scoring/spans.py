"""Entity matching in the four SemEval-2013 Task 9.1 modes, and the counts it gives.

Modes (names as in nervaluate / Segura-Bedmar et al. 2013):

``strict``   same boundaries and same label
``exact``    same boundaries, any label
``partial``  any overlap, any label
``type``     any overlap and same label

Counting convention, the same for every mode: within one document, gold and predicted
spans are matched **one to one** (each span is used at most once). ``tp`` is the number
of matched pairs, ``fp`` the number of unmatched predictions, ``fn`` the number of
unmatched gold spans. So ``tp + fp`` is always the number of predictions and ``tp + fn``
the number of gold spans, whatever the mode. For non-overlapping, token-aligned spans
``strict`` then gives exactly seqeval's ``mode="strict", scheme=IOB2`` numbers.

Unlike SemEval-2013 there is **no half credit**: in ``partial`` mode an overlap counts
as a full match (the "lenient" measure of BioCreative and n2c2).

Boundaries are compared on ``Span.pieces``: a discontinuous span equals another only
if all its fragments are equal, and it overlaps another if any piece overlaps.

Per label, ``tp`` and ``fn`` go to the gold span's label and ``fp`` to the predicted
span's label (this only matters in ``exact`` and ``partial``, where matched labels may
differ).

Which pairs are matched in the overlap modes: among all one-to-one matchings we take one
that is best by, in order, (1) the number of pairs, (2) the number of pairs with equal
labels, (3) the total overlap in characters, (4) the smallest total union in characters.
Criterion (1) makes ``tp`` the size of a *maximum* matching, so the score never depends
on the order spans happen to be listed in; a greedy largest-overlap-first match can
undercount (gold ``[0,10) [10,12)``, predictions ``[2,11) [0,2)``: greedy pairs
``[0,10)-[2,11)`` and strands the rest, a maximum matching finds two pairs). The optimum
is found exactly per connected group of overlapping spans (Hungarian algorithm); the
groups are nearly always one gold and one predicted span, which is solved directly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence

from medner.document import Span
from medner.errors import ConfigError

MODES: tuple[str, ...] = ("strict", "exact", "partial", "type")

Pieces = tuple[tuple[int, int], ...]


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown evaluation mode {mode!r}; choose one of {', '.join(MODES)}")


def match_spans(gold: Sequence[Span], pred: Sequence[Span], mode: str) -> list[tuple[int, int]]:
    """Matched ``(gold index, pred index)`` pairs for one document, sorted by gold index."""
    check_mode(mode)
    if not gold or not pred:
        return []
    if mode == "strict":
        pairs = _match_identical(gold, pred, lambda s: (pieces_of(s), s.label))
    elif mode == "exact":
        pairs = _match_exact(gold, pred)
    else:
        pairs = _match_overlapping(gold, pred, same_label=mode == "type")
    pairs.sort()
    return pairs


def count_document(gold: Sequence[Span], pred: Sequence[Span], mode: str) -> dict[str, list[int]]:
    """Per-label ``[tp, fp, fn]`` for one document (labels with all-zero counts absent)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    pairs = match_spans(gold, pred, mode)
    matched_pred = set()
    matched_gold = set()
    for g, p in pairs:
        counts[gold[g].label][0] += 1
        matched_gold.add(g)
        matched_pred.add(p)
    for p, span in enumerate(pred):
        if p not in matched_pred:
            counts[span.label][1] += 1
    for g, span in enumerate(gold):
        if g not in matched_gold:
            counts[span.label][2] += 1
    return dict(counts)


# --------------------------------------------------------------------------- boundaries


def _match_identical(gold, pred, key) -> list[tuple[int, int]]:
    # Multiset intersection: the k-th gold span with a key pairs with the k-th prediction.
    waiting: dict[object, list[int]] = defaultdict(list)
    for g, span in enumerate(gold):
        waiting[key(span)].append(g)
    pairs = []
    for p, span in enumerate(pred):
        queue = waiting.get(key(span))
        if queue:
            pairs.append((queue.pop(0), p))
    return pairs


def _match_exact(gold, pred) -> list[tuple[int, int]]:
    # Same boundaries, any label: within one boundary group pair equal labels first (so
    # that a correct prediction is never spent on a wrongly typed duplicate), then the rest
    # in order. Every pairing within a group has the same size, min(#gold, #pred).
    pairs = _match_identical(gold, pred, lambda s: (pieces_of(s), s.label))
    used_g = {g for g, _ in pairs}
    used_p = {p for _, p in pairs}
    left_gold: dict[Pieces, list[int]] = defaultdict(list)
    for g, span in enumerate(gold):
        if g not in used_g:
            left_gold[pieces_of(span)].append(g)
    for p, span in enumerate(pred):
        if p not in used_p:
            queue = left_gold.get(pieces_of(span))
            if queue:
                pairs.append((queue.pop(0), p))
    return pairs


# --------------------------------------------------------------------------- overlap


def pieces_of(span: Span) -> Pieces:
    """The span's pieces in order (readers should already sort fragments; cheap to be sure)."""
    if span.fragments:
        return tuple(sorted(span.fragments))
    return ((span.start, span.end),)


def _length(pieces: Pieces) -> int:
    return sum(e - s for s, e in pieces)


def overlap(a: Pieces, b: Pieces) -> int:
    """Characters shared by two sets of pieces."""
    total = 0
    for s1, e1 in a:
        for s2, e2 in b:
            shared = min(e1, e2) - max(s1, s2)
            if shared > 0:
                total += shared
    return total


def _overlapping_pairs(gold, pred, same_label: bool) -> dict[tuple[int, int], int]:
    """All (g, p) pairs that may match, with their overlap in characters."""
    gold_pieces = [pieces_of(s) for s in gold]
    pred_pieces = [pieces_of(s) for s in pred]
    pred_ends = [max(e for _, e in pieces) for pieces in pred_pieces]
    # Candidates by extent (first piece start, last piece end), found with a bisect on
    # sorted starts so a document costs O(n log n) rather than O(n * m).
    order = sorted(range(len(pred)), key=lambda p: pred_pieces[p][0][0])
    starts = [pred_pieces[p][0][0] for p in order]
    longest = max(pred_ends[p] - pred_pieces[p][0][0] for p in order)
    edges = {}
    for g, gp in enumerate(gold_pieces):
        lo, hi = gp[0][0], max(e for _, e in gp)
        for k in range(bisect_left(starts, lo - longest + 1), bisect_left(starts, hi)):
            p = order[k]
            if pred_ends[p] <= lo:
                continue
            if same_label and gold[g].label != pred[p].label:
                continue
            shared = overlap(gp, pred_pieces[p])
            if shared > 0:
                edges[(g, p)] = shared
    return edges


def _match_overlapping(gold, pred, same_label: bool) -> list[tuple[int, int]]:
    edges = _overlapping_pairs(gold, pred, same_label)
    if not edges:
        return []
    # Connected groups of overlapping spans (union-find; preds are offset by len(gold)).
    parent = list(range(len(gold) + len(pred)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g, p in edges:
        parent[find(g)] = find(len(gold) + p)
    groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for g, p in edges:
        groups[find(g)].append((g, p))

    pairs = []
    for group_edges in groups.values():
        rows = sorted({g for g, _ in group_edges})
        cols = sorted({p for _, p in group_edges})
        if len(rows) == 1 and len(cols) == 1:
            pairs.append((rows[0], cols[0]))
            continue
        weights = _lexicographic_weights(gold, pred, rows, cols, edges)
        for r, c in _max_weight_matching(weights):
            pairs.append((rows[r], cols[c]))
    return pairs


def _lexicographic_weights(gold, pred, rows, cols, edges) -> list[list[int]]:
    """Edge weights whose sum over a matching orders matchings lexicographically by
    (pairs, equal-label pairs, total overlap, -total union); 0 means "no edge"."""
    lengths_g = {g: _length(pieces_of(gold[g])) for g in rows}
    lengths_p = {p: _length(pieces_of(pred[p])) for p in cols}
    bound = sum(lengths_g.values()) + sum(lengths_p.values()) + 1
    # Each lower criterion summed over at most min(rows, cols) pairs stays below `radix`,
    # so it can never outweigh one unit of a higher criterion.
    radix = bound * (min(len(rows), len(cols)) + 1)
    weights = [[0] * len(cols) for _ in rows]
    for r, g in enumerate(rows):
        for c, p in enumerate(cols):
            shared = edges.get((g, p))
            if shared is None:
                continue
            same = int(gold[g].label == pred[p].label)
            union = lengths_g[g] + lengths_p[p] - shared
            weights[r][c] = ((radix + same) * radix + shared) * radix + (bound - union)
    return weights


def _max_weight_matching(weights: list[list[int]]) -> list[tuple[int, int]]:
    """(row, col) pairs of a maximum-weight matching; zero weights mean "no edge".

    Hungarian algorithm with potentials (O(n^2 m)) on exact integers; a zero-weight
    assignment is the same as leaving the row unmatched, so it is dropped.
    """
    transposed = len(weights) > len(weights[0])
    if transposed:
        weights = [list(col) for col in zip(*weights, strict=True)]
    n, m = len(weights), len(weights[0])
    inf = float("inf")
    u = [0] * (n + 1)
    v = [0] * (m + 1)
    owner = [0] * (m + 1)  # owner[j]: row (1-based) assigned to column j, 0 if none
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = owner[j0]
            delta = inf
            j1 = 0
            row = weights[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = -row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    pairs = [
        (owner[j] - 1, j - 1)
        for j in range(1, m + 1)
        if owner[j] and weights[owner[j] - 1][j - 1] > 0
    ]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return pairs


# --------------------------------------------------------------------------- scores


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1; a zero denominator gives 0 (seqeval / scikit-learn default)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
