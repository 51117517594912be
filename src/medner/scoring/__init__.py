"""Literature-grade scoring of entity and relation predictions.

``score_spans``  fast point scores for one mode (training loops, early stopping)
``evaluate``     every mode, relations, bootstrap confidence intervals -> ``EvaluationReport``
``compare``      two prediction sets on one gold: F1 difference, paired CI, p-value

Documents are paired by ``Document.id`` (see ``pairing``), spans are matched one to one
in the SemEval-2013 modes (see ``spans`` for the exact counting convention), relations are
scored as per-document sets (see ``relations``), and intervals come from resampling
documents (see ``bootstrap``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medner.document import Document
from medner.errors import ConfigError
from medner.scoring.assertions import ASSERTION_MODES, assertion_counts, carries_assertions
from medner.scoring.bootstrap import (
    CONFIDENCE,
    approximate_randomisation,
    micro_prf,
    percentile_interval,
    prf_intervals,
    resampled_totals,
)
from medner.scoring.concepts import CONCEPT_MODES, carries_ids, concept_counts
from medner.scoring.pairing import Pairing, pair_documents
from medner.scoring.relations import BASES, choose_basis, has_relations, relation_counts
from medner.scoring.report import (
    ComparisonReport,
    EvaluationReport,
    MacroScores,
    ModeResult,
    RelationResult,
    Scores,
)
from medner.scoring.spans import MODES, check_mode, count_document, match_spans, prf

__all__ = [
    "BASES",
    "MODES",
    "ComparisonReport",
    "EvaluationReport",
    "MacroScores",
    "ModeResult",
    "RelationResult",
    "Scores",
    "compare",
    "evaluate",
    "match_spans",
    "pair_documents",
    "score_spans",
]

LabelCounts = dict[str, list[int]]


def score_spans(gold: Sequence[Document], pred: Sequence[Document], mode: str = "strict") -> dict:
    """Point scores for one mode, without bootstrap.

    Returns ``{"micro": {precision, recall, f1, tp, fp, fn}, "macro": {precision, recall,
    f1}, "per_label": {label: {precision, recall, f1, tp, fp, fn}}}``.
    """
    check_mode(mode)
    _, per_label = _span_counts(pair_documents(gold, pred), mode)
    result = _mode_result(mode, per_label)
    micro = result.micro.to_dict()
    macro = result.macro
    return {
        "micro": micro,
        "macro": {"precision": macro.precision, "recall": macro.recall, "f1": macro.f1},
        "per_label": {label: s.to_dict() for label, s in result.per_label.items()},
    }


def evaluate(
    gold: Sequence[Document],
    pred: Sequence[Document],
    *,
    modes: Sequence[str] = MODES,
    bootstrap: int = 1000,
    seed: int = 0,
    notes: Mapping[str, int] | None = None,
    relation_basis: str | None = None,
) -> EvaluationReport:
    """Score ``pred`` against ``gold`` in each mode, plus concept IDs when both sides carry
    them (``medner.scoring.concepts``), assertions when the predictions have them and the gold
    marks some (``medner.scoring.assertions``) and relations when either side has any.

    ``bootstrap`` resamples of documents give 95% percentile intervals on micro P/R/F1
    (0 turns them off). ``notes`` are caller counts carried into every output format.
    ``relation_basis`` forces ``"concept-id"`` or ``"surface-string"``; by default it is
    chosen from the data (see ``medner.scoring.relations``).
    """
    modes = (modes,) if isinstance(modes, str) else tuple(dict.fromkeys(modes))
    if not modes:
        raise ConfigError("evaluate: 'modes' is empty; choose from " + ", ".join(MODES))
    for mode in modes:
        check_mode(mode)
    _check_bootstrap(bootstrap)
    pairing = pair_documents(gold, pred)

    results: dict[str, ModeResult] = {}
    columns: list[np.ndarray] = []
    for mode in modes:
        per_doc, per_label = _span_counts(pairing, mode)
        results[mode] = _mode_result(mode, per_label)
        columns.append(per_doc)

    # concept IDs, then assertions: each scored only where the data carries them
    sections: list[dict[str, ModeResult]] = []
    for applies, section_modes, count in (
            (carries_ids, CONCEPT_MODES, concept_counts),
            (carries_assertions, ASSERTION_MODES, assertion_counts)):
        scored: dict[str, ModeResult] = {}
        for mode in section_modes if applies(pairing) else ():
            per_doc, per_label = count(pairing, mode)
            scored[mode] = _mode_result(mode, per_label)
            columns.append(per_doc)
        sections.append(scored)
    concepts, assertions = sections

    relations = None
    if has_relations([pairing]):
        basis = choose_basis([pairing], relation_basis)
        per_doc, per_label = relation_counts(pairing, basis)
        relations = _mode_result("relations", per_label, basis=basis)
        columns.append(per_doc)

    if bootstrap and pairing.pairs:
        # One set of document resamples for every mode and the relations, so intervals
        # are comparable across them.
        totals = resampled_totals(np.hstack(columns), bootstrap, seed)
        for k, mode in enumerate(modes):
            results[mode] = _with_ci(results[mode], totals[:, 3 * k : 3 * k + 3])
        for k, mode in enumerate(concepts, start=len(modes)):
            concepts[mode] = _with_ci(concepts[mode], totals[:, 3 * k : 3 * k + 3])
        for k, mode in enumerate(assertions, start=len(modes) + len(concepts)):
            assertions[mode] = _with_ci(assertions[mode], totals[:, 3 * k : 3 * k + 3])
        if relations is not None:
            relations = _with_ci(relations, totals[:, -3:])

    return EvaluationReport(
        results=results,
        relations=relations,
        concepts=concepts,
        assertions=assertions,
        documents=len(pairing.pairs),
        missing_ids=pairing.missing_ids,
        notes=_check_notes(notes),
        bootstrap=bootstrap if pairing.pairs else 0,
        seed=seed,
        confidence=CONFIDENCE,
    )


def compare(
    gold: Sequence[Document],
    pred_a: Sequence[Document],
    pred_b: Sequence[Document],
    *,
    mode: str = "strict",
    bootstrap: int = 1000,
    seed: int = 0,
    names: tuple[str, str] = ("A", "B"),
    relation_basis: str | None = None,
) -> ComparisonReport:
    """Compare two prediction sets on the same gold by micro F1 (``mode`` may also be
    ``"relations"``).

    The difference is F1(B) - F1(A). Its interval is a paired percentile bootstrap (both
    systems scored on the same document resamples); its p-value is two-sided, by paired
    approximate randomisation over documents with ``bootstrap`` trials (see
    ``bootstrap.approximate_randomisation``).
    """
    if mode != "relations":
        check_mode(mode)
    _check_bootstrap(bootstrap)
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(f"compare: 'names' must be two different names, got {names!r}")
    pair_a = pair_documents(gold, pred_a, side=f"{names[0]} prediction")
    pair_b = pair_documents(gold, pred_b, side=f"{names[1]} prediction")

    basis = None
    if mode == "relations":
        if not has_relations([pair_a, pair_b]):
            raise ConfigError("compare: mode 'relations' but no document has relations")
        basis = choose_basis([pair_a, pair_b], relation_basis)
        (docs_a, _), (docs_b, _) = relation_counts(pair_a, basis), relation_counts(pair_b, basis)
    else:
        (docs_a, _), (docs_b, _) = _span_counts(pair_a, mode), _span_counts(pair_b, mode)

    scores_a = _micro(docs_a.sum(axis=0))
    scores_b = _micro(docs_b.sum(axis=0))
    difference = scores_b.f1 - scores_a.f1
    difference_ci = p_value = None
    if bootstrap and len(gold):
        totals = resampled_totals(np.hstack([docs_a, docs_b]), bootstrap, seed)
        scores_a = _micro(docs_a.sum(axis=0), totals[:, :3])
        scores_b = _micro(docs_b.sum(axis=0), totals[:, 3:])
        f1_a = micro_prf(*totals[:, :3].T)[2]
        f1_b = micro_prf(*totals[:, 3:].T)[2]
        difference_ci = percentile_interval(f1_b - f1_a)
        p_value = approximate_randomisation(docs_a, docs_b, bootstrap, seed)

    return ComparisonReport(
        mode=mode,
        names=(names[0], names[1]),
        a=scores_a,
        b=scores_b,
        f1_difference=difference,
        f1_difference_ci=difference_ci,
        p_value=p_value,
        documents=len(gold),
        missing_ids=(pair_a.missing_ids, pair_b.missing_ids),
        bootstrap=bootstrap if len(gold) else 0,
        seed=seed,
        confidence=CONFIDENCE,
        relation_basis=basis,
    )


# --------------------------------------------------------------------------- helpers


def _span_counts(pairing: Pairing, mode: str) -> tuple[np.ndarray, LabelCounts]:
    """Per-document micro ``[tp, fp, fn]`` (n_docs, 3) and per-label totals."""
    per_doc = np.zeros((len(pairing.pairs), 3), dtype=np.int64)
    per_label: LabelCounts = {}
    for i, (gold, pred) in enumerate(pairing.pairs):
        counts = count_document(gold.spans, pred.spans if pred is not None else (), mode)
        row = per_doc[i]
        for label, (tp, fp, fn) in counts.items():
            total = per_label.setdefault(label, [0, 0, 0])
            total[0] += tp
            total[1] += fp
            total[2] += fn
            row += (tp, fp, fn)
    return per_doc, per_label


def _scores(tp: int, fp: int, fn: int) -> Scores:
    precision, recall, f1 = prf(tp, fp, fn)
    return Scores(precision, recall, f1, tp, fp, fn)


def _micro(total: Any, resampled: np.ndarray | None = None) -> Scores:
    tp, fp, fn = (int(x) for x in total)
    scores = _scores(tp, fp, fn)
    if resampled is None:
        return scores
    ci = prf_intervals(resampled)
    return Scores(
        scores.precision,
        scores.recall,
        scores.f1,
        tp,
        fp,
        fn,
        precision_ci=ci["precision"],
        recall_ci=ci["recall"],
        f1_ci=ci["f1"],
    )


def _mode_result(mode: str, per_label: LabelCounts, *, basis: str | None = None) -> ModeResult:
    """Micro sums the counts; macro averages per-label P, R and F1 (scikit-learn/seqeval
    style: F1 is the mean of per-label F1s, not the F1 of macro P and R) over every label
    seen in gold or predictions."""
    labels = {label: _scores(*per_label[label]) for label in sorted(per_label)}
    micro = _scores(*(sum(c[k] for c in per_label.values()) for k in range(3)))
    n = len(labels)
    macro = MacroScores(
        precision=sum(s.precision for s in labels.values()) / n if n else 0.0,
        recall=sum(s.recall for s in labels.values()) / n if n else 0.0,
        f1=sum(s.f1 for s in labels.values()) / n if n else 0.0,
        labels=n,
    )
    if basis is not None:
        return RelationResult(mode, micro, macro, labels, basis=basis)
    return ModeResult(mode, micro, macro, labels)


def _with_ci(result: ModeResult, resampled: np.ndarray) -> ModeResult:
    m = result.micro
    micro = _micro((m.tp, m.fp, m.fn), resampled)
    if isinstance(result, RelationResult):
        return RelationResult(
            result.mode, micro, result.macro, result.per_label, basis=result.basis
        )
    return ModeResult(result.mode, micro, result.macro, result.per_label)


def _check_bootstrap(bootstrap: int) -> None:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ConfigError(
            f"'bootstrap' must be a whole number of resamples >= 0, got {bootstrap!r}"
        )


def _check_notes(notes: Mapping[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in (notes or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"note {key!r} must be a count (int), got {value!r}")
        out[str(key)] = int(value)
    return out
