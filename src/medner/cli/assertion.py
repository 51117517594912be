"""``medner assertion``: train the classifier that marks spans present, absent or possible."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medner.cli.data import FormatOption, LabelsOption, MismatchOption

assertion_app = typer.Typer(help="Negation and uncertainty: mark each span present, absent or "
                            "possible.", no_args_is_help=True)


@assertion_app.command("train")
def train_command(
    train: Annotated[Path, typer.Argument(help="Spans with gold assertions: a brat folder with "
                                          "POLARITY lines (MACCROBAT), or JSONL/BioC whose "
                                          "spans carry an 'assertion' attribute.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to save the classifier; for a trained entity model folder, "
        "its assertion/, learned on that model's labels, so that everything it extracts is "
        "marked.", show_default=False)],
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML file whose \\[assertion] table sets AssertionConfig fields "
        "(epochs, learning_rate, base_model, ...).", show_default=False)] = None,
    fmt: FormatOption = None,
    labels: LabelsOption = None,
    on_mismatch: MismatchOption = "error",
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the latest checkpoint beside --out.")] = False,
) -> None:
    """Fine-tune the assertion classifier on gold spans (written atomically)."""
    from medner.assertion import train_assertion
    from medner.assertion.model import BACKEND
    from medner.core.folder import MEDNER_JSON, read_medner_json
    from medner.io import read_corpus
    from medner.labels import LabelSchema, apply_schema, get_schema
    from medner.pipeline import ASSERTION_FOLDER, stage_config, stage_tables

    target, schema = out, get_schema(labels) if labels else None
    meta = read_medner_json(out) if (out / MEDNER_JSON).is_file() else {}
    if meta and meta["backend"] != BACKEND:  # an entity model folder: its assertion/ stage
        target = out / ASSERTION_FOLDER
        schema = schema or LabelSchema.from_dict(meta["schema"])
    settings = stage_tables(config).get("assertion", {})
    documents = read_corpus(train, fmt, on_mismatch=on_mismatch).documents
    if schema is not None:
        documents, _ = apply_schema(documents, schema)
    model = train_assertion(
        documents, out=target, resume=resume, progress=True,
        config=stage_config("assertion", settings, config),
        log=lambda message: typer.echo(message, err=True))
    typer.echo(str(model.path))


def register(app: typer.Typer) -> None:
    app.add_typer(assertion_app, name="assertion")
