"""``medner ensemble MODEL MODEL... --out DIR``: one folder that averages several encoders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def ensemble_command(
    models: Annotated[list[Path], typer.Argument(
        help="Two or more encoder folders trained alike (e.g. `medner train ... --seed N`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The ensemble folder to write.")],
    dev: Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer needs Optional
        "--dev", help="Score the ensemble on this corpus and save its metrics in the folder.")
    ] = None,
) -> None:
    """Average the word probabilities of several encoders in one model folder, for
    `medner extract`, `evaluate`, `serve` and `medner.load`."""
    from medner.backends.encoder.ensemble import build_ensemble
    from medner.backends.encoder.folder import check_folder
    from medner.io import read_corpus
    from medner.labels import LabelSchema, apply_schema

    documents = None
    if dev is not None:
        schema = LabelSchema.from_dict(check_folder(models[0])["schema"])
        documents, _ = apply_schema(read_corpus(dev).documents, schema)
    path = build_ensemble(models, out, dev=documents, dev_path=str(dev) if dev else None,
                          log=typer.echo)
    typer.echo(f"saved {path} ({len(models)} members)")


def register(app: typer.Typer) -> None:
    app.command("ensemble")(ensemble_command)
