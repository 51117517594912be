"""``medner pretrain`` (domain-adaptive MLM / causal LM) and ``medner evaluate-lm`` (perplexity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional  # noqa: UP035 - typer reads annotations at runtime

import typer

from medner.errors import ConfigError


def pretrain_command(
    objective: Annotated[str, typer.Option(
        "--objective", help="mlm (masked LM, encoders) or clm (causal LM, decoders).")],
    text: Annotated[list[Path], typer.Option(
        "--text", help="Unlabeled text: any corpus format, plain .txt (paragraphs are "
        "documents) or medner JSONL. Repeat for several files.")],
    base_model: Annotated[str, typer.Option(
        "--base-model", help="Packaged alias (minilm-l6, smollm2-135m), folder or Hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Output model folder (atomic).")],
    exclude: Annotated[Optional[list[Path]], typer.Option(  # noqa: UP045
        "--exclude", help="Documents never to pretrain on (e.g. your dev/test files): "
        "dropped by id, by normalised text, or where one text holds the other whole (an "
        "abstract without its title), then checked again.")] = None,
    text_format: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--format", help="Format of the --text files (default: guessed).")] = None,
    block_size: Annotated[int, typer.Option(help="Tokens per training block.")] = 128,
    held_out: Annotated[float, typer.Option(
        help="Fraction of documents held out for perplexity before/after.")] = 0.05,
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = 1.0,
    max_steps: Annotated[Optional[int], typer.Option(  # noqa: UP045
        help="Stop after this many steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Blocks per step.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-5,
    seed: Annotated[int, typer.Option(help="Seed for the held-out split, masks, order.")] = 13,
    bf16: Annotated[Optional[bool], typer.Option(  # noqa: UP045
        "--bf16/--no-bf16", help="bf16 autocast (default: MEDNER_PRECISION, else on when the "
        "CPU supports bf16).",
        show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option(  # noqa: UP045
        help="Torch CPU threads.")] = None,
    save_steps: Annotated[int, typer.Option(
        help="Checkpoint every N steps (what --resume continues from).")] = 200,
    resume: Annotated[bool, typer.Option(
        help="Continue from the last checkpoint in <out>.checkpoints/.")] = False,
) -> None:
    """Continue pretraining a base model on medical text; the output is a --base-model."""
    from medner.pretrain import PretrainConfig, pretrain

    if objective not in ("mlm", "clm"):
        raise ConfigError(f"--objective {objective!r}: choose mlm or clm")
    config = PretrainConfig(
        objective=objective, texts=tuple(str(p) for p in text), base_model=base_model,
        out=str(out), exclude=tuple(str(p) for p in exclude or ()), text_format=text_format,
        block_size=block_size, held_out=held_out, epochs=epochs, max_steps=max_steps,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, save_steps=save_steps,
        bf16=bf16, threads=threads, resume=resume)
    result = pretrain(config, log=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"perplexity on held-out text: {result.meta['perplexity_before']} -> "
               f"{result.meta['perplexity_after']}")
    typer.echo(str(result.path))


def evaluate_lm_command(
    model: Annotated[str, typer.Argument(help="Model folder, packaged alias or Hub id.")],
    text: Annotated[list[Path], typer.Option("--text", help="Text files (any format).")],
    objective: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--objective", help="mlm or clm (default: from the model's config).")] = None,
    block_size: Annotated[int, typer.Option(help="Tokens per block.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Perplexity of a language model on text (pseudo-perplexity for masked LMs)."""
    from medner.pretrain import evaluate_lm

    if objective not in (None, "mlm", "clm"):
        raise ConfigError(f"--objective {objective!r}: choose mlm or clm")
    result = evaluate_lm(model, [str(p) for p in text], objective=objective,
                         block_size=block_size)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(f"{result['objective']} perplexity {result['perplexity']} on "
                   f"{result['blocks']} blocks of {result['block_size']} tokens "
                   f"({result['documents']} documents)")


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain_command)
    app.command("evaluate-lm")(evaluate_lm_command)
