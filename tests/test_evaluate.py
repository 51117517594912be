"""Hand-computed cases for the scorer: every mode, pairing, relations and output formats."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from medner.document import Document, Relation, Span
from medner.errors import ConfigError, MednerError
from medner.scoring import MODES, evaluate, match_spans, score_spans

TEXT = "x" * 100


def S(start: int, end: int, label: str, *, fragments=(), ids=(), sid=None, text=None) -> Span:
    return Span(
        start,
        end,
        label,
        text if text is not None else TEXT[start:end],
        ids=tuple(ids),
        fragments=tuple(fragments),
        id=sid,
    )


def D(doc_id: str, *spans: Span, relations=(), text: str = TEXT) -> Document:
    return Document(doc_id, text, tuple(spans), tuple(relations))


def micro(gold, pred, mode):
    m = score_spans(gold, pred, mode)["micro"]
    return m["tp"], m["fp"], m["fn"], m["precision"], m["recall"], m["f1"]


def check(result: dict, tp, fp, fn, p, r, f1):
    assert (result["tp"], result["fp"], result["fn"]) == (tp, fp, fn)
    assert result["precision"] == pytest.approx(p)
    assert result["recall"] == pytest.approx(r)
    assert result["f1"] == pytest.approx(f1)


# --------------------------------------------------------------------------- known edits

# Gold                           Prediction                        edit
# g1 [0,5)   Disease             p1 [0,5)   Disease                correct
# g2 [10,20) Chemical            p2 [12,20) Chemical               boundary shift
# g3 [30,40) Disease             p3 [30,40) Chemical               type change
# g4 [50,60) Chemical            -                                 deletion
# g5 [70,80) Disease             p5 [75,85) Chemical               shift and type change
# -                              p6 [90,95) Disease                insertion
EDIT_GOLD = [D("d", S(0, 5, "Disease"), S(10, 20, "Chemical"), S(30, 40, "Disease"),
               S(50, 60, "Chemical"), S(70, 80, "Disease"))]  # fmt: skip
EDIT_PRED = [D("d", S(0, 5, "Disease"), S(12, 20, "Chemical"), S(30, 40, "Chemical"),
               S(75, 85, "Chemical"), S(90, 95, "Disease"))]  # fmt: skip


def test_known_edits_strict():
    # Only g1-p1 has the same boundaries and type: tp 1; the other 4 predictions are fp,
    # the other 4 gold spans fn. P = R = F1 = 1/5.
    result = score_spans(EDIT_GOLD, EDIT_PRED, "strict")
    check(result["micro"], 1, 4, 4, 0.2, 0.2, 0.2)
    # Disease: gold g1 g3 g5, predicted p1 p6 -> tp 1 (g1), fp 1 (p6), fn 2 (g3 g5):
    # P 1/2, R 1/3, F1 2*(1/6)/(5/6) = 0.4. Chemical: gold g2 g4, predicted p2 p3 p5, no match.
    check(result["per_label"]["Disease"], 1, 1, 2, 1 / 2, 1 / 3, 0.4)
    check(result["per_label"]["Chemical"], 0, 3, 2, 0, 0, 0)
    # Macro: mean over the two labels.
    assert result["macro"]["precision"] == pytest.approx(0.25)
    assert result["macro"]["recall"] == pytest.approx(1 / 6)
    assert result["macro"]["f1"] == pytest.approx(0.2)


def test_known_edits_exact():
    # Same boundaries, any type: g1-p1 and g3-p3 -> tp 2, fp 3 (p2 p5 p6), fn 3 (g2 g4 g5).
    result = score_spans(EDIT_GOLD, EDIT_PRED, "exact")
    check(result["micro"], 2, 3, 3, 0.4, 0.4, 0.4)
    # tp and fn go to the gold label, fp to the predicted label:
    # Disease tp 2 (g1 g3), fp 1 (p6), fn 1 (g5) -> 2/3 everywhere.
    # Chemical tp 0, fp 2 (p2 p5), fn 2 (g2 g4).
    check(result["per_label"]["Disease"], 2, 1, 1, 2 / 3, 2 / 3, 2 / 3)
    check(result["per_label"]["Chemical"], 0, 2, 2, 0, 0, 0)
    assert result["macro"]["f1"] == pytest.approx(1 / 3)


def test_known_edits_partial():
    # Any overlap, any type: g1-p1, g2-p2, g3-p3, g5-p5 (5 characters shared) -> tp 4;
    # p6 overlaps nothing (fp 1), g4 has no prediction (fn 1). P = R = F1 = 4/5.
    result = score_spans(EDIT_GOLD, EDIT_PRED, "partial")
    check(result["micro"], 4, 1, 1, 0.8, 0.8, 0.8)
    # Disease: tp 3 (g1 g3 g5), fp 1 (p6), fn 0 -> P 3/4, R 1, F1 6/7.
    # Chemical: tp 1 (g2), fp 0, fn 1 (g4) -> P 1, R 1/2, F1 2/3.
    check(result["per_label"]["Disease"], 3, 1, 0, 3 / 4, 1, 6 / 7)
    check(result["per_label"]["Chemical"], 1, 0, 1, 1, 1 / 2, 2 / 3)
    assert result["macro"]["precision"] == pytest.approx(7 / 8)
    assert result["macro"]["recall"] == pytest.approx(3 / 4)
    assert result["macro"]["f1"] == pytest.approx((6 / 7 + 2 / 3) / 2)


def test_known_edits_type():
    # Overlap and same type: g1-p1 (Disease), g2-p2 (Chemical) -> tp 2;
    # fp 3 (p3 p5 typed Chemical on Disease, p6), fn 3 (g3 g4 g5).
    result = score_spans(EDIT_GOLD, EDIT_PRED, "type")
    check(result["micro"], 2, 3, 3, 0.4, 0.4, 0.4)
    # Disease tp 1, fp 1 (p6), fn 2 (g3 g5): P 1/2, R 1/3, F1 0.4.
    # Chemical tp 1, fp 2 (p3 p5), fn 1 (g4): P 1/3, R 1/2, F1 0.4.
    check(result["per_label"]["Disease"], 1, 1, 2, 1 / 2, 1 / 3, 0.4)
    check(result["per_label"]["Chemical"], 1, 2, 1, 1 / 3, 1 / 2, 0.4)
    assert result["macro"]["precision"] == pytest.approx(5 / 12)
    assert result["macro"]["f1"] == pytest.approx(0.4)


def test_evaluate_matches_score_spans_for_every_mode():
    report = evaluate(EDIT_GOLD, EDIT_PRED, bootstrap=0)
    for mode in MODES:
        expected = score_spans(EDIT_GOLD, EDIT_PRED, mode)
        m = report.micro(mode)
        assert (m.tp, m.fp, m.fn) == tuple(expected["micro"][k] for k in ("tp", "fp", "fn"))
        assert m.f1 == pytest.approx(expected["micro"]["f1"])
        assert report.macro(mode).f1 == pytest.approx(expected["macro"]["f1"])
        assert set(report.per_label(mode)) == set(expected["per_label"])


# --------------------------------------------------------------------------- small cases per mode


def test_strict_duplicate_prediction_is_a_false_positive():
    # One gold span, predicted twice: one-to-one matching uses the gold span once.
    # tp 1, fp 1, fn 0 -> P 1/2, R 1, F1 2/3.
    gold = [D("d", S(0, 5, "Disease"))]
    pred = [D("d", S(0, 5, "Disease"), S(0, 5, "Disease"))]
    assert micro(gold, pred, "strict") == pytest.approx((1, 1, 0, 0.5, 1.0, 2 / 3))


def test_exact_pairs_equal_labels_first():
    # Gold [0,5) Disease; predicted [0,5) Chemical and [0,5) Disease. Only one can match;
    # the Disease one is chosen, so the wrongly typed prediction is the fp, under Chemical.
    gold = [D("d", S(0, 5, "Disease"))]
    pred = [D("d", S(0, 5, "Chemical"), S(0, 5, "Disease"))]
    result = score_spans(gold, pred, "exact")
    check(result["micro"], 1, 1, 0, 0.5, 1.0, 2 / 3)
    check(result["per_label"]["Disease"], 1, 0, 0, 1, 1, 1)
    check(result["per_label"]["Chemical"], 0, 1, 0, 0, 0, 0)
    assert match_spans(gold[0].spans, pred[0].spans, "exact") == [(0, 1)]


def test_partial_split_prediction_counts_once():
    # Gold [0,10); the model predicts it in two halves. One-to-one: one half is a tp, the
    # other an fp (a "count every overlapping prediction" scorer would give precision 1).
    gold = [D("d", S(0, 10, "Disease"))]
    pred = [D("d", S(0, 4, "Disease"), S(5, 10, "Disease"))]
    assert micro(gold, pred, "partial") == pytest.approx((1, 1, 0, 0.5, 1.0, 2 / 3))


def test_partial_merged_prediction_counts_once():
    # Two gold spans, one prediction covering both: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3.
    gold = [D("d", S(0, 5, "Disease"), S(6, 10, "Disease"))]
    pred = [D("d", S(0, 10, "Disease"))]
    assert micro(gold, pred, "partial") == pytest.approx((1, 0, 1, 1.0, 0.5, 2 / 3))


def test_partial_is_a_maximum_matching_not_greedy():
    # Gold [0,10) [10,12); predictions [2,11) (8 chars with the first gold, 1 with the
    # second) and [0,2). Greedy largest-overlap-first would pair [0,10)-[2,11) and leave
    # the rest unmatched (tp 1); the maximum matching pairs [0,10)-[0,2) and [10,12)-[2,11).
    gold = [D("d", S(0, 10, "Disease"), S(10, 12, "Disease"))]
    pred = [D("d", S(2, 11, "Disease"), S(0, 2, "Disease"))]
    assert micro(gold, pred, "partial") == pytest.approx((2, 0, 0, 1.0, 1.0, 1.0))
    assert micro(gold, pred, "type") == pytest.approx((2, 0, 0, 1.0, 1.0, 1.0))


def test_partial_prefers_same_label_then_larger_overlap():
    # Gold [0,10) Disease; predictions [0,10) Chemical (10 chars) and [2,8) Disease (6 chars).
    # partial: both overlap; the same-label one is matched, the Chemical one is the fp.
    gold = [D("d", S(0, 10, "Disease"))]
    pred = [D("d", S(0, 10, "Chemical"), S(2, 8, "Disease"))]
    assert match_spans(gold[0].spans, pred[0].spans, "partial") == [(0, 1)]
    result = score_spans(gold, pred, "partial")
    check(result["micro"], 1, 1, 0, 0.5, 1.0, 2 / 3)
    assert result["per_label"]["Chemical"]["fp"] == 1
    # type: only [2,8) Disease may match.
    assert micro(gold, pred, "type") == pytest.approx((1, 1, 0, 0.5, 1.0, 2 / 3))
    # With equal labels the larger overlap wins: [0,10) is matched, [2,8) is the fp.
    pred_same = [D("d", S(2, 8, "Disease"), S(0, 10, "Disease"))]
    assert match_spans(gold[0].spans, pred_same[0].spans, "partial") == [(0, 1)]


def test_type_needs_overlap_and_label():
    # Gold [0,10) Disease, [20,30) Chemical; predictions [5,15) Disease, [20,30) Disease.
    # type: [5,15)D-[0,10)D matches; [20,30) has the wrong type -> tp 1, fp 1, fn 1.
    # partial: both match -> tp 2. exact: [20,30) -> tp 1. strict: none -> tp 0.
    gold = [D("d", S(0, 10, "Disease"), S(20, 30, "Chemical"))]
    pred = [D("d", S(5, 15, "Disease"), S(20, 30, "Disease"))]
    assert micro(gold, pred, "type") == pytest.approx((1, 1, 1, 0.5, 0.5, 0.5))
    assert micro(gold, pred, "partial") == pytest.approx((2, 0, 0, 1.0, 1.0, 1.0))
    assert micro(gold, pred, "exact") == pytest.approx((1, 1, 1, 0.5, 0.5, 0.5))
    assert micro(gold, pred, "strict") == pytest.approx((0, 2, 2, 0.0, 0.0, 0.0))


def test_touching_spans_do_not_overlap():
    # End-exclusive offsets: [0,5) and [5,10) share no character.
    gold = [D("d", S(0, 5, "Disease"))]
    pred = [D("d", S(5, 10, "Disease"))]
    assert micro(gold, pred, "partial") == pytest.approx((0, 1, 1, 0.0, 0.0, 0.0))


def test_discontinuous_spans_compare_pieces():
    # Gold: "x..x" with pieces [0,3) and [8,12).
    disc = S(0, 12, "Disease", fragments=((0, 3), (8, 12)))
    gold = [D("d", disc)]
    # Same pieces: a strict match.
    assert micro(gold, [D("d", S(0, 12, "Disease", fragments=((0, 3), (8, 12))))], "strict")[0] == 1
    # The contiguous cover [0,12) has other boundaries: not strict/exact, but overlaps.
    cover = [D("d", S(0, 12, "Disease"))]
    assert micro(gold, cover, "strict")[:3] == (0, 1, 1)
    assert micro(gold, cover, "exact")[:3] == (0, 1, 1)
    assert micro(gold, cover, "partial")[:3] == (1, 0, 0)
    # [4,7) lies in the gap between the pieces: no overlap at all.
    gap = [D("d", S(4, 7, "Disease"))]
    assert micro(gold, gap, "partial")[:3] == (0, 1, 1)
    # [10,11) touches the second piece only: an overlap.
    assert micro(gold, [D("d", S(10, 11, "Disease"))], "type")[:3] == (1, 0, 0)


def test_empty_documents_score_zero_not_an_error():
    gold = [D("d")]
    for mode in MODES:
        assert micro(gold, [D("d")], mode) == (0, 0, 0, 0.0, 0.0, 0.0)
    result = score_spans(gold, [D("d")])
    assert result["per_label"] == {}
    assert result["macro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_label_predicted_but_never_gold_pulls_macro_down():
    # Labels are those seen in gold or predictions. Disease: perfect (F1 1); Other: only an
    # fp (P 0 by the zero-division convention, R 0/0 -> 0, F1 0). Macro F1 = (1 + 0) / 2.
    gold = [D("d", S(0, 5, "Disease"))]
    pred = [D("d", S(0, 5, "Disease"), S(10, 15, "Other"))]
    result = score_spans(gold, pred)
    check(result["per_label"]["Other"], 0, 1, 0, 0, 0, 0)
    assert result["macro"]["f1"] == pytest.approx(0.5)
    assert result["macro"]["precision"] == pytest.approx(0.5)
    assert result["macro"]["recall"] == pytest.approx(0.5)


def test_score_spans_shape():
    result = score_spans(EDIT_GOLD, EDIT_PRED)
    assert set(result) == {"micro", "macro", "per_label"}
    assert set(result["micro"]) == {"precision", "recall", "f1", "tp", "fp", "fn"}
    assert set(result["macro"]) == {"precision", "recall", "f1"}
    for scores in result["per_label"].values():
        assert set(scores) == {"precision", "recall", "f1", "tp", "fp", "fn"}
    json.dumps(result)


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="lenient"):
        score_spans(EDIT_GOLD, EDIT_PRED, "lenient")
    with pytest.raises(ConfigError):
        evaluate(EDIT_GOLD, EDIT_PRED, modes=("strict", "fuzzy"))


# --------------------------------------------------------------------------- self-scoring


def _rich_corpus() -> list[Document]:
    a = S(0, 5, "Chemical", ids=("D1",), sid="T1")
    b = S(10, 20, "Disease", ids=("D2",), sid="T2")
    c = S(30, 42, "Disease", fragments=((30, 33), (38, 42)), ids=("D3",), sid="T3")
    rels = (Relation("CID", "D1", "D2"), Relation("CID", "D1", "D3"))
    return [
        D("1", a, b, c, relations=rels),
        D("2", S(3, 9, "Chemical", ids=("D1",)), S(50, 60, "Disease", ids=("D9",))),
        D("2", S(1, 4, "Disease")),  # a duplicated id, as in NCBI-disease train
    ]


def test_corpus_against_itself_is_perfect_everywhere():
    docs = _rich_corpus()
    report = evaluate(docs, docs, bootstrap=200, seed=1)
    for mode in MODES:
        m = report.micro(mode)
        assert (m.precision, m.recall, m.f1) == (1.0, 1.0, 1.0)
        assert m.fp == m.fn == 0 and m.tp == 6
        assert m.f1_ci == (1.0, 1.0)
        macro = report.macro(mode)
        assert (macro.precision, macro.recall, macro.f1) == (1.0, 1.0, 1.0)
        assert all(s.f1 == 1.0 for s in report.per_label(mode).values())
    assert report.relations is not None
    assert report.relations.basis == "concept-id"
    assert report.relations.micro.f1 == 1.0 and report.relations.micro.tp == 2
    assert report.missing_documents == 0
    assert report.documents == 3


# --------------------------------------------------------------------------- pairing


def test_missing_prediction_document_counts_as_empty():
    gold = [D("1", S(0, 5, "Disease")), D("2", S(0, 5, "Disease"), S(10, 15, "Disease"))]
    pred = [D("1", S(0, 5, "Disease"))]
    # Document 2 predicts nothing: tp 1, fp 0, fn 2 -> P 1, R 1/3, F1 0.5.
    assert micro(gold, pred, "strict") == pytest.approx((1, 0, 2, 1.0, 1 / 3, 0.5))
    report = evaluate(gold, pred, bootstrap=0)
    assert report.missing_documents == 1
    assert report.missing_ids == ("2",)
    assert report.to_dict()["documents_missing_predictions"] == 1
    assert "1 without predictions" in report.to_markdown()


def test_prediction_for_unknown_document_is_an_error_naming_it():
    with pytest.raises(MednerError, match="'zz'.*not in the gold"):
        score_spans([D("1")], [D("1"), D("zz")])


def test_prediction_with_other_text_is_an_error_naming_it():
    with pytest.raises(MednerError, match="'1'.*text differs"):
        score_spans([D("1")], [D("1", text="y" * 100)])


def test_duplicate_ids_pair_in_order():
    first = D("dup", S(0, 5, "Disease"), text="a" * 20)
    second = D("dup", S(5, 9, "Chemical"), text="b" * 20)
    # In order they pair perfectly.
    assert micro([first, second], [first, second], "strict")[:3] == (2, 0, 0)
    # Swapped, the k-th gold meets the k-th prediction and the texts differ.
    with pytest.raises(MednerError, match="'dup'"):
        score_spans([first, second], [second, first])
    # One more prediction than gold copies is an error, one fewer is a missing document.
    with pytest.raises(MednerError, match="'dup'.*more often"):
        score_spans([first], [first, first])
    report = evaluate([first, second], [first], bootstrap=0)
    assert report.missing_ids == ("dup",)
    assert report.micro("strict").fn == 1


# --------------------------------------------------------------------------- relations


def test_relations_by_concept_id():
    spans = (S(0, 5, "Chemical", ids=("D1",)), S(10, 15, "Disease", ids=("D2",)),
             S(20, 25, "Disease", ids=("D3",)))  # fmt: skip
    gold = [D("1", *spans, relations=(Relation("CID", "D1", "D2"), Relation("CID", "D1", "D3")))]
    # Predicted: one right pair, one wrong pair (D4 is no mention's ID, which is allowed),
    # and the right pair again (a set: counted once).
    pred_rels = (
        Relation("CID", "D1", "D2"),
        Relation("CID", "D4", "D3"),
        Relation("CID", "D1", "D2"),
    )
    pred = [D("1", *spans, relations=pred_rels)]
    report = evaluate(gold, pred, bootstrap=0)
    rel = report.relations
    # tp 1 (D1-D2), fp 1 (D4-D3), fn 1 (D1-D3) -> P = R = F1 = 1/2.
    assert rel.basis == "concept-id"
    assert (rel.micro.tp, rel.micro.fp, rel.micro.fn) == (1, 1, 1)
    assert rel.micro.f1 == pytest.approx(0.5)
    assert rel.per_label["CID"].tp == 1
    # Direction matters: (D2, D1) is not (D1, D2).
    flipped = [D("1", *spans, relations=(Relation("CID", "D2", "D1"),))]
    assert evaluate(gold, flipped, bootstrap=0).relations.micro.tp == 0


def test_relations_by_span_surface_strings():
    text = "Aspirin relieves headache; aspirin causes ulcer."
    gold_spans = (
        Span(0, 7, "Drug", "Aspirin", id="T1"),
        Span(17, 25, "Symptom", "headache", id="T2"),
        Span(27, 34, "Drug", "aspirin", id="T3"),
        Span(42, 47, "Symptom", "ulcer", id="T4"),
    )
    gold_rels = (
        Relation("treats", "T1", "T2", args="span"),
        Relation("causes", "T3", "T4", args="span"),
    )
    # The prediction uses other span ids and the lower-case mention; "aspirin treats
    # headache" is the same surface pair as the gold one. "ulcer treats aspirin" is wrong.
    pred_spans = (
        Span(27, 34, "Drug", "aspirin", id="P1"),
        Span(17, 25, "Symptom", "headache", id="P2"),
        Span(42, 47, "Symptom", "ulcer", id="P3"),
    )
    pred_rels = (
        Relation("treats", "P1", "P2", args="span"),
        Relation("treats", "P3", "P1", args="span"),
    )
    gold = [Document("1", text, gold_spans, gold_rels)]
    pred = [Document("1", text, pred_spans, pred_rels)]
    rel = evaluate(gold, pred, bootstrap=0).relations
    # tp 1 (treats aspirin headache), fp 1, fn 1 (causes aspirin ulcer) -> 1/2 each.
    assert rel.basis == "surface-string"
    assert (rel.micro.tp, rel.micro.fp, rel.micro.fn) == (1, 1, 1)
    assert rel.micro.precision == pytest.approx(0.5)


def test_relations_gold_ids_against_llm_names():
    text = "Clonidine (Catapres) induced hypotension."
    gold_spans = (
        Span(0, 9, "Chemical", "Clonidine", ids=("D003000",)),
        Span(11, 19, "Chemical", "Catapres", ids=("D003000",)),
        Span(29, 40, "Disease", "hypotension", ids=("D007022",)),
    )
    gold = [Document("1", text, gold_spans, (Relation("CID", "D003000", "D007022"),))]
    # An LLM wrote names instead of IDs: the basis falls back to surface strings, the gold
    # IDs become their first mentions, and "catapres" is a gold alias of the same concept.
    for head in ("clonidine", "CATAPRES", " Clonidine "):
        pred = [Document("1", text, (), (Relation("CID", head, "Hypotension"),))]
        rel = evaluate(gold, pred, bootstrap=0).relations
        assert rel.basis == "surface-string"
        assert (rel.micro.tp, rel.micro.fp, rel.micro.fn) == (1, 0, 0), head
    wrong = [Document("1", text, (), (Relation("CID", "aspirin", "hypotension"),))]
    rel = evaluate(gold, wrong, bootstrap=0).relations
    assert (rel.micro.tp, rel.micro.fp, rel.micro.fn) == (0, 1, 1)
    # Forcing the ID basis compares the strings with the IDs literally: nothing matches.
    forced = evaluate(gold, pred, bootstrap=0, relation_basis="concept-id").relations
    assert forced.basis == "concept-id" and forced.micro.tp == 0


def test_relations_missing_prediction_and_dangling_span_id():
    spans = (S(0, 5, "Drug", sid="T1"), S(10, 15, "ADE", sid="T2"))
    gold = [D("1", *spans, relations=(Relation("causes", "T1", "T2", args="span"),)), D("2")]
    report = evaluate(gold, [D("2")], bootstrap=0)
    assert report.relations.micro.fn == 1 and report.relations.micro.tp == 0
    bad = [
        D("1", *spans, relations=(Relation("causes", "T1", "T9", args="span", id="R1"),)),
        D("2"),
    ]
    with pytest.raises(MednerError, match="'1'.*R1.*'T9'"):
        evaluate(gold, bad, bootstrap=0)


def test_no_relations_anywhere_means_no_relation_scores():
    report = evaluate(EDIT_GOLD, EDIT_PRED, bootstrap=0)
    assert report.relations is None
    assert report.to_dict()["relations"] is None
    assert "Relations" not in report.to_markdown()


# --------------------------------------------------------------------------- outputs


def test_outputs_carry_numbers_counts_and_notes():
    report = evaluate(EDIT_GOLD, EDIT_PRED, bootstrap=50, seed=3, notes={"hallucinated_spans": 7})
    data = json.loads(json.dumps(report.to_dict()))
    assert data["documents"] == 1
    assert data["notes"] == {"hallucinated_spans": 7}
    strict = data["entities"]["strict"]["micro"]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 4, 4)
    assert strict["f1"] == pytest.approx(0.2)
    assert len(strict["ci"]["f1"]) == 2
    assert data["entities"]["partial"]["per_label"]["Disease"]["tp"] == 3

    md = report.to_markdown()
    assert "| strict (micro) | 20.00 | 20.00 | 20.00 |" in md
    assert "| partial (micro) | 80.00 | 80.00 | 80.00 |" in md
    assert "| 1 | 4 | 4 |" in md  # strict counts
    assert "hallucinated_spans" in md and "| 7 |" in md

    console = Console(record=True, width=200)
    report.render(console)
    text = console.export_text()
    assert "20.00" in text and "80.00" in text
    assert "hallucinated_spans" in text
    assert "Disease" in text and "Chemical" in text


def test_report_accessors_and_errors():
    report = evaluate(EDIT_GOLD, EDIT_PRED, modes=("partial",), bootstrap=0)
    assert report.modes == ("partial",)
    assert report.micro("partial").f1 == pytest.approx(0.8)
    assert report.micro("partial").gold == 5
    with pytest.raises(ConfigError, match="strict"):
        report.micro("strict")
    assert report.micro("partial").f1_ci is None
    assert evaluate(EDIT_GOLD, EDIT_PRED, modes="partial", bootstrap=0).modes == ("partial",)
    with pytest.raises(ConfigError):
        evaluate(EDIT_GOLD, EDIT_PRED, notes={"dropped": "many"})
    with pytest.raises(ConfigError):
        evaluate(EDIT_GOLD, EDIT_PRED, bootstrap=-1)
