"""Bootstrap intervals and the paired comparison of two prediction sets."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
from rich.console import Console

from medner.document import Document, Relation, Span
from medner.errors import ConfigError, MednerError
from medner.scoring import compare, evaluate, score_spans
from medner.scoring.bootstrap import approximate_randomisation, resampled_totals

TEXT = "x" * 400


def corpus(n_docs: int = 120, seed: int = 0) -> list[Document]:
    """Documents with 1-8 non-overlapping Disease/Chemical spans and CID relations."""
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        spans = []
        pos = 0
        for _ in range(rng.randint(1, 8)):
            pos += rng.randint(2, 30)
            end = pos + rng.randint(3, 12)
            if end > len(TEXT):
                break
            label = rng.choice(["Disease", "Chemical"])
            spans.append(
                Span(pos, end, label, TEXT[pos:end], ids=(f"{label[0]}{rng.randint(1, 9)}",))
            )
            pos = end
        chems = [s.ids[0] for s in spans if s.label == "Chemical"]
        dis = [s.ids[0] for s in spans if s.label == "Disease"]
        rels = tuple({Relation("CID", c, x) for c in chems[:2] for x in dis[:2]})
        docs.append(Document(f"doc{d}", TEXT, tuple(spans), rels))
    return docs


def degrade(docs: list[Document], rate: float, seed: int) -> list[Document]:
    """Drop, shift or retype each span with probability ``rate``; drop relations alike."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        spans = []
        for s in doc.spans:
            roll = rng.random()
            if roll < rate / 3:
                continue
            if roll < 2 * rate / 3:
                spans.append(
                    Span(s.start + 1, s.end, s.label, TEXT[s.start + 1 : s.end], ids=s.ids)
                )
            elif roll < rate:
                other = "Chemical" if s.label == "Disease" else "Disease"
                spans.append(Span(s.start, s.end, other, s.text, ids=s.ids))
            else:
                spans.append(s)
        rels = tuple(r for r in doc.relations if rng.random() >= rate)
        out.append(Document(doc.id, doc.text, tuple(spans), rels))
    return out


GOLD = corpus()
NOISY = degrade(GOLD, 0.5, seed=1)


def test_intervals_contain_the_point_estimate_and_are_ordered():
    report = evaluate(GOLD, NOISY, bootstrap=500, seed=0)
    for mode in report.modes:
        m = report.micro(mode)
        for value, (low, high) in (
            (m.precision, m.precision_ci),
            (m.recall, m.recall_ci),
            (m.f1, m.f1_ci),
        ):
            assert 0.0 <= low <= value <= high <= 1.0
        assert m.f1_ci[0] < m.f1_ci[1]  # real noise gives a real interval
    rel = report.relations.micro
    assert rel.f1_ci[0] <= rel.f1 <= rel.f1_ci[1]


def test_bootstrap_is_deterministic_for_a_seed():
    first = evaluate(GOLD, NOISY, bootstrap=300, seed=7).to_dict()
    again = evaluate(GOLD, NOISY, bootstrap=300, seed=7).to_dict()
    other = evaluate(GOLD, NOISY, bootstrap=300, seed=8).to_dict()
    assert first == again
    assert first["entities"]["strict"]["micro"]["ci"] != other["entities"]["strict"]["micro"]["ci"]
    # The point estimates do not depend on the seed or on bootstrapping at all.
    plain = evaluate(GOLD, NOISY, bootstrap=0).to_dict()
    for mode in ("strict", "exact", "partial", "type"):
        assert other["entities"][mode]["micro"]["f1"] == first["entities"][mode]["micro"]["f1"]
        assert plain["entities"][mode]["micro"]["f1"] == first["entities"][mode]["micro"]["f1"]
        assert "ci" not in plain["entities"][mode]["micro"]


def test_asking_for_fewer_modes_does_not_change_the_interval():
    # All modes share one set of document resamples, drawn from the seed alone.
    all_modes = evaluate(GOLD, NOISY, bootstrap=200, seed=3)
    strict_only = evaluate(GOLD, NOISY, modes=("strict",), bootstrap=200, seed=3)
    assert all_modes.micro("strict").f1_ci == strict_only.micro("strict").f1_ci


def test_resampled_totals_are_sums_of_whole_documents():
    counts = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]])
    totals = resampled_totals(counts, 1000, seed=0)
    assert totals.shape == (1000, 3)
    # Each resample draws 3 documents, so the totals are multiples of the per-doc counts.
    assert (totals[:, 0] + totals[:, 1] // 2 + totals[:, 2] // 3 == 3).all()
    assert (totals[:, 1] % 2 == 0).all() and (totals[:, 2] % 3 == 0).all()
    # Every document is drawn about 1/3 of the time.
    assert totals[:, 0].mean() == pytest.approx(1.0, abs=0.1)


def test_compare_identical_predictions():
    result = compare(GOLD, NOISY, NOISY, bootstrap=300, seed=0)
    assert result.f1_difference == 0.0
    assert result.f1_difference_ci == (0.0, 0.0)
    assert result.p_value == 1.0
    assert result.a == result.b


def test_compare_clearly_better_system():
    better = degrade(GOLD, 0.1, seed=2)
    result = compare(GOLD, NOISY, better, bootstrap=500, seed=0, names=("noisy", "better"))
    assert result.f1_difference > 0.2
    low, high = result.f1_difference_ci
    assert 0 < low <= result.f1_difference <= high
    assert result.p_value < 0.01
    assert result.a.f1 == pytest.approx(score_spans(GOLD, NOISY)["micro"]["f1"])
    assert result.b.f1 == pytest.approx(score_spans(GOLD, better)["micro"]["f1"])
    # Swapping the systems flips the sign and keeps the p-value.
    swapped = compare(GOLD, better, NOISY, bootstrap=500, seed=0)
    assert swapped.f1_difference == pytest.approx(-result.f1_difference)
    assert swapped.p_value == pytest.approx(result.p_value)


def test_compare_two_similar_systems_is_not_significant():
    # Two independent draws of the same noise: a small difference, p well above 0.05.
    a = degrade(GOLD, 0.3, seed=11)
    b = degrade(GOLD, 0.3, seed=12)
    result = compare(GOLD, a, b, bootstrap=1000, seed=0)
    low, high = result.f1_difference_ci
    assert low < 0 < high
    assert result.p_value > 0.05


def test_compare_relations_and_outputs():
    result = compare(
        GOLD, NOISY, GOLD, mode="relations", bootstrap=200, seed=0, names=("x", "gold")
    )
    assert result.relation_basis == "concept-id"
    assert result.b.f1 == 1.0
    assert result.f1_difference == pytest.approx(1.0 - result.a.f1)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data["systems"]) == {"x", "gold"}
    assert data["systems"]["gold"]["tp"] == result.b.tp
    assert data["f1_difference"]["p_value"] == result.p_value
    md = result.to_markdown()
    assert "| gold | 100.00 | 100.00 | 100.00 |" in md
    assert f"{100 * result.f1_difference:+.2f} points" in md
    console = Console(record=True, width=200)
    result.render(console)
    text = console.export_text()
    assert "100.00" in text and "p = " in text


def test_compare_reports_missing_documents_and_bad_input():
    result = compare(GOLD, NOISY[:-5], NOISY, bootstrap=0)
    assert [len(m) for m in result.missing_ids] == [5, 0]
    assert result.p_value is None and result.f1_difference_ci is None
    assert result.to_dict()["systems"]["A"]["documents_missing_predictions"] == 5
    with pytest.raises(MednerError, match="B prediction document 'nope'"):
        compare(GOLD, NOISY, [*NOISY, Document("nope", "t")])
    with pytest.raises(ConfigError):
        compare(GOLD, NOISY, NOISY, names=("same", "same"))
    plain = [Document(d.id, d.text, d.spans) for d in GOLD]
    with pytest.raises(ConfigError, match="relations"):
        compare(plain, plain, plain, mode="relations")


def test_approximate_randomisation_p_value_bounds():
    perfect = np.array([[1, 0, 0]] * 20)
    # Identical systems: every shuffle ties the observed difference of 0, so p = 1.
    assert approximate_randomisation(perfect, perfect.copy(), 200, seed=0) == 1.0
    # A wrong on every document, B right on every document: a shuffle reaches a difference
    # that large only if it swaps all 20 documents or none (2 in 2**20), so p is the floor
    # 1 / (trials + 1), give or take.
    wrong = np.array([[0, 1, 1]] * 20)
    p = approximate_randomisation(wrong, perfect, 999, seed=0)
    assert p == pytest.approx(1 / 1000, abs=0.01)


def test_fast_enough_for_a_training_loop():
    docs = corpus(n_docs=500, seed=5)
    pred = degrade(docs, 0.3, seed=6)
    start = time.perf_counter()
    score_spans(docs, pred, "strict")
    quick = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(docs, pred, bootstrap=1000, seed=0)
    full = time.perf_counter() - start
    # Generous bounds (typically ~0.01 s and ~0.2 s): a guard against quadratic blow-ups.
    assert quick < 1.0
    assert full < 10.0
