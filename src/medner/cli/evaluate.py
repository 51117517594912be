"""`medner evaluate`: score predictions against gold, or predict with a model and score."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medner.cli.options import (
    Abbreviations,
    Constrained,
    Device,
    MaxPromptTokens,
    RepeatPatience,
)
from medner.document import Document
from medner.errors import MednerError
from medner.io import read_corpus, write_corpus
from medner.io.base import atomic_write
from medner.labels import apply_schema, get_schema

console = Console()

MODES = ("strict", "exact", "partial", "type")


def predict_with_model(
    model_path: Path, gold: list[Document], **load_options: Any
) -> tuple[list[Document], list[Document], dict[str, int]]:
    """Run a saved model over the gold texts.

    Returns the gold mapped onto the model's schema (without its relations when the model
    predicts none), the predictions, and the model's counts for the run (an LLM's dropped
    hallucinations, bad lines, the gold relations left unscored), shown in the report.
    """
    from medner.backends import load  # torch is imported only when a model is used

    model = load(model_path, **load_options)
    linker = getattr(model, "linker", None)
    leaked = linker.index.annotated_documents(gold) if linker is not None else []
    if leaked:
        raise MednerError(
            f"{model_path}: its concept index was built from the annotations of {len(leaked)} "
            f"of the documents to score (e.g. {', '.join(leaked[:3])}); concept scores would "
            "be inflated. Rebuild the index without them (`medner kb build ... --out MODEL`).")
    gold, _ = apply_schema(gold, model.schema)
    # a bar for the person at a terminal (an LLM takes minutes); none in pipes and logs
    predicted = model.predict(gold, progress=sys.stderr.isatty())
    notes = dict(getattr(model, "last_notes", None) or {})
    unscored = sum(len(d.relations) for d in gold)
    if unscored and not model.predicts_relations:
        # a relation F1 of 0 would blame a model that was never asked for relations
        gold = [replace(d, relations=()) for d in gold]
        notes["gold relations not scored: the model has no relation stage"] = unscored
    return gold, predicted, notes


# One piece: most of its lines are the typer option declarations of its signature, which
# are the command's --help; the body only dispatches to medner.evaluate.
def evaluate_command(
    gold_or_model: Annotated[
        Path, typer.Argument(help="Gold corpus file, or a model folder when --data is given.")
    ],
    pred: Annotated[
        Path | None, typer.Argument(help="Predicted corpus (same document ids as the gold).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Gold corpus to predict on with the model.")
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="A second prediction file: paired comparison against PRED."),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Map gold and predicted labels onto this schema first."),
    ] = None,
    modes: Annotated[
        str, typer.Option(help="Matching modes, comma-separated: strict,exact,partial,type.")
    ] = ",".join(MODES),
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples of documents for 95% CIs (0 = none).")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    output_format: Annotated[
        str, typer.Option("--output-format", help="table, json or markdown.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the report here (.json or .md)."),
    ] = None,
    save_predictions: Annotated[
        Path | None,
        typer.Option("--save-predictions", help="With a model: write its predictions here."),
    ] = None,
    on_mismatch: Annotated[
        str,
        typer.Option(
            "--on-mismatch",
            help="'error' or 'skip' for gold mentions whose text does not match their offsets.",
        ),
    ] = "error",
    constrained: Constrained = None,
    repeat_patience: RepeatPatience = None,
    max_prompt_tokens: MaxPromptTokens = None,
    abbreviations: Abbreviations = None,
    device: Device = None,
) -> None:
    """Score entities (P/R/F1 per label, micro/macro, 4 matching modes, 95% CIs), concept IDs,
    assertions and relations.

    Assertions (present / absent / possible) are scored when the predictions carry them and
    the gold marks some: per value on the spans both sides share, and "strict+assertion",
    which needs span, label and assertion all right.

    Either `medner evaluate GOLD PRED` or `medner evaluate MODEL --data GOLD`.
    """
    from medner.scoring import compare as compare_predictions
    from medner.scoring import evaluate

    chosen = tuple(m.strip() for m in modes.split(",") if m.strip())
    unknown = [m for m in chosen if m not in MODES]
    if unknown:
        raise typer.BadParameter(
            f"unknown mode(s) {unknown}; use {', '.join(MODES)}", param_hint="--modes"
        )
    if output_format not in ("table", "json", "markdown"):
        raise typer.BadParameter("use table, json or markdown", param_hint="--output-format")
    if on_mismatch not in ("error", "skip"):
        raise typer.BadParameter("use error or skip", param_hint="--on-mismatch")

    notes: dict[str, int] = {}
    if data is not None:
        if pred is not None:
            raise MednerError("give either GOLD PRED or MODEL --data GOLD, not both")
        gold = read_corpus(data, on_mismatch=on_mismatch).documents
        gold, predicted, notes = predict_with_model(gold_or_model, gold, constrained=constrained,
                                                     repeat_patience=repeat_patience,
                                                     abbreviations=abbreviations,
                                                     max_prompt_tokens=max_prompt_tokens,
                                                     device=device)
        if save_predictions is not None:
            write_corpus(predicted, save_predictions)
    else:
        if pred is None:
            raise MednerError(
                "missing PRED: give `medner evaluate GOLD PRED` or "
                "`medner evaluate MODEL --data GOLD`"
            )
        gold = read_corpus(gold_or_model, on_mismatch=on_mismatch).documents
        predicted = read_corpus(pred, on_mismatch=on_mismatch).documents
    if labels:
        schema = get_schema(labels)
        gold, _ = apply_schema(gold, schema)
        predicted, _ = apply_schema(predicted, schema)

    if compare is not None:
        other = read_corpus(compare, on_mismatch=on_mismatch).documents
        if labels:
            other, _ = apply_schema(other, get_schema(labels))
        report = compare_predictions(
            gold,
            predicted,
            other,
            mode=chosen[0],
            bootstrap=bootstrap,
            seed=seed,
            names=(str(pred or gold_or_model), str(compare)),
        )
    else:
        report = evaluate(
            gold, predicted, modes=chosen, bootstrap=bootstrap, seed=seed, notes=notes
        )

    if output_format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    elif output_format == "markdown":
        print(report.to_markdown())
    else:
        console.print(report.to_table())
    if output is not None:
        with atomic_write(output) as handle:
            if output.suffix == ".md":
                handle.write(report.to_markdown() + "\n")
            else:
                handle.write(json.dumps(report.to_dict(), indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
