"""Result objects of ``evaluate`` and ``compare``: JSON-ready dicts, Markdown, rich tables.

Numbers are floats in [0, 1] inside; Markdown and tables show percentages with two
decimals, and always the tp/fp/fn counts behind them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medner.errors import ConfigError
from medner.scoring.bootstrap import CONFIDENCE

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

Interval = tuple[float, float]

_SHOWN_MISSING_IDS = 10
P_VALUE_METHOD = "approximate randomisation (paired, document level, two-sided)"
CI_METHOD = "percentile bootstrap over documents"


@dataclass(frozen=True)
class Scores:
    """Micro (or per-label) precision, recall, F1 with the counts behind them."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    precision_ci: Interval | None = None
    recall_ci: Interval | None = None
    f1_ci: Interval | None = None

    @property
    def gold(self) -> int:
        """Gold spans (or relations) counted here: tp + fn."""
        return self.tp + self.fn

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }
        if self.f1_ci is not None:
            out["ci"] = {
                "precision": list(self.precision_ci or ()),
                "recall": list(self.recall_ci or ()),
                "f1": list(self.f1_ci),
            }
        return out


@dataclass(frozen=True)
class MacroScores:
    """Unweighted means of the per-label precision, recall and F1 over ``labels`` labels."""

    precision: float
    recall: float
    f1: float
    labels: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "labels": self.labels,
        }


@dataclass(frozen=True)
class ModeResult:
    mode: str
    micro: Scores
    macro: MacroScores
    per_label: dict[str, Scores]

    def to_dict(self) -> dict[str, Any]:
        return {
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
            "per_label": {label: s.to_dict() for label, s in self.per_label.items()},
        }


@dataclass(frozen=True)
class RelationResult(ModeResult):
    basis: str = "concept-id"
    """``"concept-id"`` or ``"surface-string"``: what heads and tails were compared as."""

    def to_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, **super().to_dict()}


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of one prediction set against a gold set, in every requested mode."""

    results: dict[str, ModeResult]
    """Entity scores by mode, in the order requested."""
    relations: RelationResult | None
    """Relation scores, or ``None`` when neither side has relations."""
    documents: int
    missing_ids: tuple[str, ...]
    """Gold documents without a prediction, scored as predicting nothing."""
    concepts: dict[str, ModeResult] = field(default_factory=dict)
    """Concept-ID scores (``concept-mention``, ``concept-document``) when both sides carry
    IDs; empty otherwise."""
    assertions: dict[str, ModeResult] = field(default_factory=dict)
    """Assertion scores (``assertion`` per value on matched spans, ``strict+assertion`` per
    label) when the predictions carry assertions and the gold marks some; empty otherwise."""
    notes: dict[str, int] = field(default_factory=dict)
    """Counts passed in by the caller (e.g. hallucinated strings an LLM parser dropped)."""
    bootstrap: int = 0
    seed: int = 0
    confidence: float = CONFIDENCE

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.results)

    @property
    def missing_documents(self) -> int:
        return len(self.missing_ids)

    def _result(self, mode: str) -> ModeResult:
        if mode not in self.results:
            raise ConfigError(
                f"mode {mode!r} was not evaluated; this report has {', '.join(self.results)}"
            )
        return self.results[mode]

    def micro(self, mode: str = "strict") -> Scores:
        return self._result(mode).micro

    def macro(self, mode: str = "strict") -> MacroScores:
        return self._result(mode).macro

    def per_label(self, mode: str = "strict") -> dict[str, Scores]:
        return self._result(mode).per_label

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "documents_missing_predictions": self.missing_documents,
            "missing_document_ids": list(self.missing_ids),
            "notes": dict(self.notes),
            "bootstrap": {
                "resamples": self.bootstrap,
                "seed": self.seed,
                "confidence": self.confidence,
                "method": CI_METHOD,
            },
            "entities": {mode: r.to_dict() for mode, r in self.results.items()},
            "concepts": {mode: r.to_dict() for mode, r in self.concepts.items()} or None,
            "assertions": {mode: r.to_dict() for mode, r in self.assertions.items()} or None,
            "relations": self.relations.to_dict() if self.relations else None,
        }

    def to_markdown(self) -> str:
        ci = self.bootstrap > 0
        ci_head = f" F1 {self.confidence:.0%} CI |" if ci else ""
        lines = ["## Entities", "", _summary_line(self), ""]
        lines += [
            f"| Mode | Precision | Recall | F1 |{ci_head} TP | FP | FN |",
            "|---|---:|---:|---:|" + ("---:|" if ci else "") + "---:|---:|---:|",
        ]
        for mode, r in self.results.items():
            m = r.micro
            ci_cell = f" {_interval(m.f1_ci)} |" if ci else ""
            lines.append(
                f"| {mode} (micro) | {_pct(m.precision)} | {_pct(m.recall)} | {_pct(m.f1)} |"
                f"{ci_cell} {m.tp} | {m.fp} | {m.fn} |"
            )
            a = r.macro
            lines.append(
                f"| {mode} (macro, {a.labels} labels) | {_pct(a.precision)} | {_pct(a.recall)} |"
                f" {_pct(a.f1)} |" + (" |" if ci else "") + " | | |"
            )
        for mode, r in self.results.items():
            lines += ["", f"### Per label, {mode}", ""]
            lines += _label_rows_markdown(r.per_label)
        for title, scoped in self._sections():
            lines += ["", f"## {title}", "",
                      f"| Scope | Precision | Recall | F1 |{ci_head} TP | FP | FN |",
                      "|---|---:|---:|---:|" + ("---:|" if ci else "") + "---:|---:|---:|"]
            lines += _scope_rows_markdown(scoped, ci)
        if self.relations is not None:
            rel = self.relations
            m = rel.micro
            lines += ["", f"## Relations (basis: {rel.basis})", ""]
            lines += [
                f"| Scope | Precision | Recall | F1 |{ci_head} TP | FP | FN |",
                "|---|---:|---:|---:|" + ("---:|" if ci else "") + "---:|---:|---:|",
                f"| micro | {_pct(m.precision)} | {_pct(m.recall)} | {_pct(m.f1)} |"
                + (f" {_interval(m.f1_ci)} |" if ci else "")
                + f" {m.tp} | {m.fp} | {m.fn} |",
            ]
            lines += ["", "### Per relation label", ""]
            lines += _label_rows_markdown(rel.per_label)
        if self.notes:
            lines += ["", "## Notes", "", "| Note | Count |", "|---|---:|"]
            lines += [f"| {_md(k)} | {v} |" for k, v in self.notes.items()]
        return "\n".join(lines) + "\n"

    def to_table(self) -> RenderableType:
        """A rich renderable: summary, per-label table for the first mode, relations."""
        from rich.console import Group

        parts: list[Any] = [self._summary_table()]
        if self.results:
            parts.append(self._label_table())
        parts += [self._scope_table(title, scoped) for title, scoped in self._sections()]
        if self.relations is not None:
            parts.append(self._relation_table())
        if self.notes:
            notes = _table("Notes", ["Note"], ["Count"])
            for k, v in self.notes.items():
                notes.add_row(k, str(v))
            parts.append(notes)
        return Group(*parts)

    def _ci_columns(self) -> list[str]:
        return [f"F1 {self.confidence:.0%} CI"] if self.bootstrap > 0 else []

    def _summary_table(self):
        ci = self.bootstrap > 0
        summary = _table("Entities", ["Mode"],
                         ["P", "R", "F1", *self._ci_columns(), "TP", "FP", "FN"],
                         caption=_summary_line(self))
        for mode, r in self.results.items():
            m, a = r.micro, r.macro
            summary.add_row(f"{mode} micro", _pct(m.precision), _pct(m.recall),
                            f"[bold]{_pct(m.f1)}[/bold]", *([_interval(m.f1_ci)] if ci else []),
                            str(m.tp), str(m.fp), str(m.fn))
            summary.add_row(f"[dim]{mode} macro ({a.labels})[/dim]", _pct(a.precision),
                            _pct(a.recall), _pct(a.f1), *([""] if ci else []), "", "", "")
        return summary

    def _label_table(self):
        first, *others = self.results
        labels = _table(f"Per label ({first}; F1 for other modes)", ["Label"],
                        ["Gold", "P", "R", "F1", "TP", "FP", "FN",
                         *(f"F1 {mode}" for mode in others)])
        for label, s in self.results[first].per_label.items():
            other = [self.results[m].per_label.get(label) for m in others]
            labels.add_row(label, str(s.gold), _pct(s.precision), _pct(s.recall), _pct(s.f1),
                           str(s.tp), str(s.fp), str(s.fn),
                           *[_pct(o.f1) if o else "-" for o in other])
        return labels

    def _sections(self) -> list[tuple[str, dict[str, ModeResult]]]:
        """The optional sections with scores, titled: concept IDs, assertions."""
        return [(title, scoped) for title, scoped in (("Concept IDs", self.concepts),
                                                      ("Assertions", self.assertions)) if scoped]

    def _scope_table(self, title: str, scoped: dict[str, ModeResult]):
        """Micro and per-label rows of each mode of a section (concept IDs, assertions)."""
        ci = self.bootstrap > 0
        table = _table(title, ["Scope"], ["P", "R", "F1", *self._ci_columns(), "TP", "FP", "FN"])
        for mode, r in scoped.items():
            for name, s in [("[bold]micro[/bold]", r.micro), *r.per_label.items()]:
                table.add_row(f"{mode} {name}", _pct(s.precision), _pct(s.recall),
                              _pct(s.f1), *([_interval(s.f1_ci)] if ci else []), str(s.tp),
                              str(s.fp), str(s.fn))
            if len(r.per_label) > 1:
                table.add_row(f"[dim]{mode} macro ({r.macro.labels})[/dim]",
                              _pct(r.macro.precision), _pct(r.macro.recall), _pct(r.macro.f1),
                              *([""] if ci else []), "", "", "")
        return table

    def _relation_table(self):
        rel = self.relations
        ci = self.bootstrap > 0
        table = _table(f"Relations (basis: {rel.basis})", ["Label"],
                       ["P", "R", "F1", *self._ci_columns(), "TP", "FP", "FN"])
        for name, s in [("[bold]micro[/bold]", rel.micro), *rel.per_label.items()]:
            table.add_row(name, _pct(s.precision), _pct(s.recall), _pct(s.f1),
                          *([_interval(s.f1_ci)] if ci else []), str(s.tp), str(s.fp),
                          str(s.fn))
        return table

    def render(self, console: Console) -> None:
        console.print(self.to_table())


@dataclass(frozen=True)
class ComparisonReport:
    """Two prediction sets on the same gold: their scores and the F1 difference B - A."""

    mode: str
    names: tuple[str, str]
    a: Scores
    b: Scores
    f1_difference: float
    """F1 of B minus F1 of A (micro), in [−1, 1]."""
    f1_difference_ci: Interval | None
    """Paired percentile bootstrap interval: both systems scored on the same resamples."""
    p_value: float | None
    """Two-sided, by paired approximate randomisation (see ``P_VALUE_METHOD``)."""
    documents: int
    missing_ids: tuple[tuple[str, ...], tuple[str, ...]]
    """Gold documents without a prediction, for A and for B."""
    bootstrap: int = 0
    seed: int = 0
    confidence: float = CONFIDENCE
    relation_basis: str | None = None
    """Set when ``mode == "relations"``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "relation_basis": self.relation_basis,
            "documents": self.documents,
            "systems": {
                name: {**s.to_dict(), "documents_missing_predictions": len(missing)}
                for name, s, missing in zip(
                    self.names, (self.a, self.b), self.missing_ids, strict=True
                )
            },
            "f1_difference": {
                "value": self.f1_difference,
                "ci": list(self.f1_difference_ci) if self.f1_difference_ci else None,
                "p_value": self.p_value,
                "ci_method": "paired " + CI_METHOD,
                "p_value_method": P_VALUE_METHOD,
            },
            "bootstrap": {
                "resamples": self.bootstrap,
                "seed": self.seed,
                "confidence": self.confidence,
            },
        }

    def _difference_line(self) -> str:
        a, b = self.names
        text = f"F1 difference ({b} − {a}): {_signed_points(self.f1_difference)} points"
        if self.f1_difference_ci is not None:
            low, high = self.f1_difference_ci
            text += f", {self.confidence:.0%} CI [{_signed_points(low)}, {_signed_points(high)}]"
        if self.p_value is not None:
            text += f", p = {self.p_value:.4f} ({P_VALUE_METHOD}, {self.bootstrap} trials)"
        return text

    def _title(self) -> str:
        what = "relations" if self.mode == "relations" else f"entities, {self.mode} mode"
        basis = f", basis {self.relation_basis}" if self.relation_basis else ""
        return f"Comparison ({what}{basis}; {self.documents} documents)"

    def to_markdown(self) -> str:
        ci = self.f1_difference_ci is not None
        lines = [f"## {self._title()}", ""]
        lines += [
            "| System | Precision | Recall | F1 |"
            + (f" F1 {self.confidence:.0%} CI |" if ci else "")
            + " TP | FP | FN | Missing docs |",
            "|---|---:|---:|---:|" + ("---:|" if ci else "") + "---:|---:|---:|---:|",
        ]
        for name, s, missing in zip(self.names, (self.a, self.b), self.missing_ids, strict=True):
            lines.append(
                f"| {name} | {_pct(s.precision)} | {_pct(s.recall)} | {_pct(s.f1)} |"
                + (f" {_interval(s.f1_ci)} |" if ci else "")
                + f" {s.tp} | {s.fp} | {s.fn} | {len(missing)} |"
            )
        lines += ["", self._difference_line()]
        return "\n".join(lines) + "\n"

    def to_table(self) -> RenderableType:
        from rich.table import Table

        ci = self.f1_difference_ci is not None
        table = Table(title=self._title(), caption=self._difference_line(), caption_justify="left")
        table.add_column("System")
        for name in ("P", "R", "F1"):
            table.add_column(name, justify="right")
        if ci:
            table.add_column(f"F1 {self.confidence:.0%} CI", justify="right")
        for name in ("TP", "FP", "FN", "Missing docs"):
            table.add_column(name, justify="right")
        for name, s, missing in zip(self.names, (self.a, self.b), self.missing_ids, strict=True):
            table.add_row(
                name,
                _pct(s.precision),
                _pct(s.recall),
                f"[bold]{_pct(s.f1)}[/bold]",
                *([_interval(s.f1_ci)] if ci else []),
                str(s.tp),
                str(s.fp),
                str(s.fn),
                str(len(missing)),
            )
        return table

    def render(self, console: Console) -> None:
        console.print(self.to_table())


# --------------------------------------------------------------------------- formatting


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _signed_points(value: float) -> str:
    return f"{100 * value:+.2f}"


def _interval(interval: Interval | None) -> str:
    if interval is None:
        return "-"
    return f"[{_pct(interval[0])}, {_pct(interval[1])}]"


def _scope_rows_markdown(scoped: dict[str, ModeResult], ci: bool) -> list[str]:
    lines = []
    for mode, r in scoped.items():
        for name, s in [("micro", r.micro), *r.per_label.items()]:
            lines.append(f"| {mode} {_md(name)} | {_pct(s.precision)} | {_pct(s.recall)} | "
                         f"{_pct(s.f1)} |" + (f" {_interval(s.f1_ci)} |" if ci else "")
                         + f" {s.tp} | {s.fp} | {s.fn} |")
        if len(r.per_label) > 1:
            a = r.macro
            lines.append(f"| {mode} macro ({a.labels}) | {_pct(a.precision)} | "
                         f"{_pct(a.recall)} | {_pct(a.f1)} |" + (" |" if ci else "") + " | | |")
    return lines


def _summary_line(report: EvaluationReport) -> str:
    text = f"{report.documents} documents, {report.missing_documents} without predictions"
    if report.missing_ids:
        shown = ", ".join(report.missing_ids[:_SHOWN_MISSING_IDS])
        more = ", …" if report.missing_documents > _SHOWN_MISSING_IDS else ""
        text += f" ({shown}{more})"
    if report.bootstrap:
        text += (
            f"; {report.confidence:.0%} CIs from {report.bootstrap} document resamples"
            f" (seed {report.seed})"
        )
    if report.notes:
        text += "; " + ", ".join(f"{k}: {v}" for k, v in report.notes.items())
    return text + ". Scores in %."


def _label_rows_markdown(per_label: Mapping[str, Scores]) -> list[str]:
    lines = [
        "| Label | Gold | Precision | Recall | F1 | TP | FP | FN |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, s in per_label.items():
        lines.append(
            f"| {_md(label)} | {s.gold} | {_pct(s.precision)} | {_pct(s.recall)} | {_pct(s.f1)} |"
            f" {s.tp} | {s.fp} | {s.fn} |"
        )
    return lines


def _table(title: str, left: Sequence[str], right: Sequence[str], caption: str | None = None):
    """A rich table with ``left`` columns, then right-justified ``right`` columns."""
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left")
    for name in left:
        table.add_column(name)
    for name in right:
        table.add_column(name, justify="right")
    return table
