"""Options that the commands running a saved model share (`medner extract`, `medner evaluate
MODEL --data GOLD`, `medner serve`): how it predicts and on what. Declared once, so the
commands spell and explain them alike."""

from __future__ import annotations

from typing import Annotated

import typer

Constrained = Annotated[bool | None, typer.Option(
    "--constrained/--free", help="LLM models: only let entity strings copy the input text "
    "(constrained decoding), or decode freely. Default: as the model was saved.",
    show_default=False)]
RepeatPatience = Annotated[int | None, typer.Option(
    "--repeat-patience", help="LLM models: end an answer after this many lines in a row that "
    "repeat earlier ones (a greedy loop); 0 never. Default: as the model was saved.",
    show_default=False)]
MaxPromptTokens = Annotated[int | None, typer.Option(
    "--max-prompt-tokens", help="LLM models: cut documents whose prompt is longer than this "
    "at sentence ends, one prompt a piece (smaller: more recall, slower). Default: as the "
    "model was saved.", show_default=False)]
Abbreviations = Annotated[bool | None, typer.Option(
    "--abbreviations/--no-abbreviations", help="Tag every use of an abbreviation whose long "
    "form was tagged ('puromycin aminonucleoside (PAN)' labels each 'PAN'), or not. Default: "
    "as the model was saved.", show_default=False)]

BatchSize = Annotated[int | None, typer.Option(
    "--batch-size", help="Windows per forward pass (encoder), answers decoded together (LLM). "
    "Default: the model's.", show_default=False)]
Threads = Annotated[int | None, typer.Option(
    "--threads", help="Torch CPU threads. Default: all cores.", show_default=False)]
Device = Annotated[str | None, typer.Option(
    "--device", help="Torch device for the model: auto (a CUDA GPU when torch sees one, else "
    "the CPU), cpu, cuda, cuda:1, ... Default: auto.", show_default=False)]

__all__ = ["Abbreviations", "BatchSize", "Constrained", "Device", "MaxPromptTokens",
           "RepeatPatience", "Threads"]
