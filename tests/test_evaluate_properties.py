"""The scorer against independent references: seqeval, and brute force on tiny cases."""

from __future__ import annotations

import itertools
import warnings
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medner.document import Document, Span
from medner.scoring import MODES, match_spans, score_spans
from medner.scoring.spans import count_document

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


# --------------------------------------------------------------------------- seqeval


def iob2_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Token spans (start, end-exclusive, type) under strict IOB2: an entity is a B-X
    followed by I-X tokens; an I-X that does not continue a B-X/I-X run is no entity."""
    spans = []
    current = None
    for i, tag in enumerate(tags + ["O"]):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and current is not None and current[2] == kind:
            current = (current[0], i + 1, kind)
            continue
        if current is not None:
            spans.append(current)
        current = (i, i + 1, kind) if prefix == "B" else None
    return spans


def to_documents(sentences: list[list[str]]) -> list[Document]:
    """One document per sentence; token i is the character at 2i ("w w w ...")."""
    docs = []
    for n, tags in enumerate(sentences):
        text = " ".join("w" * len(tags)) or "w"
        spans = tuple(
            Span(2 * s, 2 * e - 1, kind, text[2 * s : 2 * e - 1]) for s, e, kind in iob2_spans(tags)
        )
        docs.append(Document(f"s{n}", text, spans))
    return docs


sentence_pairs = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from(TAGS), min_size=n, max_size=n),
        st.lists(st.sampled_from(TAGS), min_size=n, max_size=n),
    )
)


@settings(max_examples=300, deadline=None)
@given(st.lists(sentence_pairs, min_size=1, max_size=6))
def test_strict_micro_and_macro_equal_seqeval(pairs):
    y_true = [list(t) for t, _ in pairs]
    y_pred = [list(p) for _, p in pairs]
    ours = score_spans(to_documents(y_true), to_documents(y_pred), "strict")
    kwargs = {"mode": "strict", "scheme": seqeval_scheme.IOB2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on 0/0, and returns 0 as we do
        for average in ("micro", "macro"):
            theirs = (
                seqeval_metrics.precision_score(y_true, y_pred, average=average, **kwargs),
                seqeval_metrics.recall_score(y_true, y_pred, average=average, **kwargs),
                seqeval_metrics.f1_score(y_true, y_pred, average=average, **kwargs),
            )
            mine = tuple(ours[average][k] for k in ("precision", "recall", "f1"))
            if not ours["per_label"]:
                # No entity anywhere: seqeval's macro is a mean of nothing (nan); we give
                # 0.0, which stays valid JSON.
                assert mine == (0.0, 0.0, 0.0)
                continue
            assert mine == pytest.approx(theirs, abs=1e-12), average


def test_seqeval_agreement_on_a_fixed_case():
    # A B-I entity, an orphan I (no entity under strict IOB2), a type change, a split.
    y_true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"]]
    y_pred = [["B-PER", "I-PER", "I-LOC", "B-ORG", "O", "B-ORG", "B-ORG", "I-ORG"]]
    ours = score_spans(to_documents(y_true), to_documents(y_pred), "strict")["micro"]
    # Gold PER[0,2) LOC[3,4) ORG[5,8); predicted PER[0,2) ORG[3,4) ORG[5,6) ORG[6,8).
    assert (ours["tp"], ours["fp"], ours["fn"]) == (1, 3, 2)
    kwargs = {"mode": "strict", "scheme": seqeval_scheme.IOB2}
    assert ours["f1"] == pytest.approx(seqeval_metrics.f1_score(y_true, y_pred, **kwargs))


# --------------------------------------------------------------------------- brute force

LABELS = ("A", "B")
WIDTH = 16


@st.composite
def spans(draw) -> Span:
    """Contiguous or two-piece spans in a 16-character text; they may overlap or repeat."""
    label = draw(st.sampled_from(LABELS))
    cuts = sorted(draw(st.sets(st.integers(0, WIDTH), min_size=2, max_size=4)))
    if len(cuts) == 4 and draw(st.booleans()):
        pieces = ((cuts[0], cuts[1]), (cuts[2], cuts[3]))
        return Span(cuts[0], cuts[3], label, "x", fragments=pieces)
    return Span(cuts[0], cuts[-1], label, "x")


def chars(span: Span) -> set[int]:
    return {i for s, e in span.pieces for i in range(s, e)}


def may_match(g: Span, p: Span, mode: str) -> bool:
    if mode == "strict":
        return chars(g) == chars(p) and sorted(g.pieces) == sorted(p.pieces) and g.label == p.label
    if mode == "exact":
        return sorted(g.pieces) == sorted(p.pieces)
    shared = bool(chars(g) & chars(p))
    return shared and (mode == "partial" or g.label == p.label)


def quality(gold, pred, pairs) -> tuple[int, int, int, int]:
    """What the scorer promises to maximise, in order: pairs, equal-label pairs, total
    overlap, minus total union."""
    same = sum(gold[g].label == pred[p].label for g, p in pairs)
    shared = sum(len(chars(gold[g]) & chars(pred[p])) for g, p in pairs)
    union = sum(len(chars(gold[g]) | chars(pred[p])) for g, p in pairs)
    return (len(pairs), same, shared, -union)


def all_matchings(gold, pred, mode):
    """Every one-to-one matching, by exhaustive search: each gold span takes one unused
    allowed prediction or none."""

    def extend(g, used):
        if g == len(gold):
            yield []
            return
        yield from extend(g + 1, used)
        for p in range(len(pred)):
            if p not in used and may_match(gold[g], pred[p], mode):
                for rest in extend(g + 1, used | {p}):
                    yield [(g, p), *rest]

    yield from extend(0, frozenset())


@settings(max_examples=400, deadline=None)
@given(st.lists(spans(), max_size=5), st.lists(spans(), max_size=5), st.sampled_from(MODES))
def test_matching_is_optimal_against_brute_force(gold, pred, mode):
    pairs = match_spans(gold, pred, mode)
    # A valid one-to-one matching of allowed pairs ...
    assert len({g for g, _ in pairs}) == len(pairs) == len({p for _, p in pairs})
    assert all(may_match(gold[g], pred[p], mode) for g, p in pairs)
    # ... that is as good as the best one exhaustive search finds.
    best = max(quality(gold, pred, m) for m in all_matchings(gold, pred, mode))
    mine = quality(gold, pred, pairs)
    if mode in ("strict", "exact"):
        assert mine[:2] == best[:2]  # boundaries are equal, so overlap ties anyway
    else:
        assert mine == best


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), max_size=6), st.lists(spans(), max_size=6))
def test_counts_are_consistent_across_modes(gold, pred):
    text = "x" * WIDTH
    g_docs, p_docs = [Document("d", text, tuple(gold))], [Document("d", text, tuple(pred))]
    tp = {}
    for mode in MODES:
        m = score_spans(g_docs, p_docs, mode)["micro"]
        # Every prediction is a tp or an fp, every gold span a tp or an fn.
        assert m["tp"] + m["fp"] == len(pred)
        assert m["tp"] + m["fn"] == len(gold)
        tp[mode] = m["tp"]
        # Per-label counts add up to the micro counts.
        per_label = count_document(gold, pred, mode)
        assert [sum(c[k] for c in per_label.values()) for k in range(3)] == [
            m["tp"],
            m["fp"],
            m["fn"],
        ]
    # Strict set intersection, independently.
    key = lambda s: (tuple(sorted(s.pieces)), s.label)  # noqa: E731
    assert tp["strict"] == sum((Counter(map(key, gold)) & Counter(map(key, pred))).values())
    # Looser modes never find fewer matches.
    assert tp["strict"] <= tp["exact"] <= tp["partial"]
    assert tp["strict"] <= tp["type"] <= tp["partial"]
    # Order of the spans does not change the counts.
    for mode in MODES:
        shuffled = score_spans(
            [Document("d", text, tuple(reversed(gold)))],
            [Document("d", text, tuple(reversed(pred)))],
            mode,
        )
        assert shuffled["micro"]["tp"] == tp[mode]


def test_brute_force_helper_sees_the_greedy_trap():
    # Guard for the reference itself: it must find 2 pairs where greedy finds 1.
    gold = [Span(0, 10, "A", "x"), Span(10, 12, "A", "x")]
    pred = [Span(2, 11, "A", "x"), Span(0, 2, "A", "x")]
    best = max(quality(gold, pred, m) for m in all_matchings(gold, pred, "partial"))
    assert best[0] == 2
    assert list(itertools.islice(all_matchings(gold, pred, "partial"), 1)) == [[]]
