"""`medner hosted ...`: tuning files for provider APIs and hosted tuning jobs
(medner.backends.hosted).

Extraction and evaluation need no command of their own: `medner extract` and `medner
evaluate MODEL --data GOLD` take a hosted run folder or a `hosted:PROVIDER:MODEL` reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medner.errors import MednerError

console = Console()
hosted_app = typer.Typer(
    help="Fine-tune and use hosted models through provider APIs (OpenAI, Gemini on Vertex AI; "
    "Cohere tuning was deprecated in September 2025).",
    no_args_is_help=True,
)

TemplateOption = Annotated[
    str, typer.Option("--template", help="Prompt template of the LLM backend (entities-json, "
                      "label-lists, tutorial, relations, entities-json+relations).")]
LabelsOption = Annotated[
    str | None, typer.Option("--labels", help="Label schema (bc5cdr, ncbi-disease, clinical4 or a "
                             "TOML/JSON file); default: the labels found in the corpus.")]
SystemOption = Annotated[
    str | None, typer.Option("--system", help="An optional system message for every example "
                             "(and every extraction request with the tuned model).")]


def validation_table(check, title: str) -> Table:
    """Counts, then one row per problem: record number, field, severity, message."""
    table = Table(title=f"{title}: {check.examples:,} examples, ~{check.approx_tokens:,} tokens "
                  f"(longest ~{check.max_example_tokens:,}), {check.file_bytes:,} bytes",
                  title_justify="left")
    table.add_column("record", justify="right")
    table.add_column("field")
    table.add_column("severity")
    table.add_column("problem")
    for problem in check.problems:
        style = "red" if problem.severity == "error" else "yellow"
        table.add_row("-" if problem.record is None else str(problem.record), problem.field,
                      f"[{style}]{problem.severity}[/]", problem.message)
    if not check.problems:
        table.add_row("-", "-", "[green]ok[/]", f"meets the documented {check.provider} limits")
    return table


@hosted_app.command("export")
def export_command(
    corpus: Annotated[Path, typer.Argument(help="A corpus in any medner format.")],
    provider: Annotated[str, typer.Option(
        "--provider", "-p", help="openai (chat JSONL), vertex (Gemini contents JSONL), cohere "
        "(chat JSONL with User/Chatbot roles) or legacy (prompt/completion JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The JSONL file to write.")],
    template: TemplateOption = "entities-json",
    labels: LabelsOption = None,
    system: SystemOption = None,
    validation_set: Annotated[bool, typer.Option(
        "--validation-set", help="Check as a validation file (its own minimum and maximum).")
    ] = False,
) -> None:
    """Write a provider's tuning file from CORPUS with the LLM templates, and check its limits.

    The file is written (atomically) even with errors, so it can be inspected; the exit
    status is then 1.
    """
    from medner.backends.hosted.formats import (
        build_examples,
        check_provider,
        to_jsonl,
        to_record,
        validate,
    )
    from medner.io import atomic_write, read_corpus
    from medner.labels import apply_schema, get_schema, infer_schema

    check_provider(provider)
    docs = read_corpus(corpus).documents
    schema = get_schema(labels) if labels else infer_schema(docs)
    docs, _ = apply_schema(docs, schema)
    records = [to_record(e, provider, system) for e in build_examples(docs, schema, template)]
    with atomic_write(out) as handle:
        handle.write(to_jsonl(records))
    check = validate(records, provider, validation_set=validation_set)
    console.print(validation_table(check, f"{out} ({provider})"))
    console.print(f"wrote {len(records):,} examples from {len(docs):,} documents to {out}",
                  highlight=False)
    if not check.ok:
        raise typer.Exit(1)


@hosted_app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="A tuning JSONL file (written by any tool).")],
    provider: Annotated[str, typer.Option("--provider", "-p",
                                          help="openai, vertex, cohere or legacy.")],
    validation_set: Annotated[bool, typer.Option(
        "--validation-set", help="Check as a validation file.")] = False,
) -> None:
    """Check an existing tuning file against the provider's documented limits."""
    from medner.backends.hosted.formats import check_provider, read_records, validate

    check_provider(provider)
    check = validate(read_records(file), provider, validation_set=validation_set)
    console.print(validation_table(check, f"{file} ({provider})"))
    if not check.ok:
        raise typer.Exit(1)


@hosted_app.command("tune")
def tune_command(
    provider: Annotated[str, typer.Option("--provider", "-p", help="openai or vertex (cohere: "
                                          "its fine-tuning was deprecated in September 2025).")],
    train: Annotated[Path, typer.Option("--train", help="Training corpus (any medner format).")],
    base_model: Annotated[str, typer.Option("--base-model", help="The provider's model id, e.g. "
                                            "gpt-4o-mini-2024-07-18 or gemini-2.5-flash.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")],
    dev: Annotated[Path | None, typer.Option("--dev", help="Validation corpus.")] = None,
    template: TemplateOption = "entities-json",
    labels: LabelsOption = None,
    system: SystemOption = None,
    suffix: Annotated[str | None, typer.Option(
        "--suffix", help="Name part of the tuned model (OpenAI suffix, Vertex display name).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default: the "
                                               "provider's).")] = None,
    gcs_uri: Annotated[str | None, typer.Option(
        "--gcs-uri", help="Vertex: gs:// URI of the training file. Vertex AI reads tuning data "
        "only from Cloud Storage; copy RUN_DIR/train.vertex.jsonl (or `medner hosted export` "
        "output) there first.")] = None,
    dev_gcs_uri: Annotated[str | None, typer.Option(
        "--dev-gcs-uri", help="Vertex: gs:// URI of the validation file.")] = None,
    poll_interval: Annotated[float, typer.Option(
        "--poll-interval", help="Seconds between status checks.")] = 30.0,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Stop polling after this many seconds (the job keeps running; the "
        "same command resumes it).")] = 6 * 3600.0,
) -> None:
    """Check the data, upload it, start a tuning job and poll it; the run folder then works
    with `medner extract` and `medner evaluate`."""
    from rich.live import Live

    from medner.backends.hosted.tune import TuneRequest, check_tunable, prepare, run_tune

    if poll_interval <= 0 or timeout <= 0:
        raise MednerError("--poll-interval and --timeout must be positive")
    check_tunable(provider)
    request = TuneRequest(provider=provider, train=train, base_model=base_model, out=out,
                          dev=dev, template=template, labels=labels, system=system,
                          suffix=suffix, epochs=epochs, gcs_uri=gcs_uri,
                          dev_gcs_uri=dev_gcs_uri, poll_interval=poll_interval, timeout=timeout)
    data = prepare(request)
    console.print(validation_table(data.train_check, f"training data ({provider})"))
    if data.dev_check is not None:
        console.print(validation_table(data.dev_check, f"validation data ({provider})"))
    with Live(console=console, transient=True) as live:
        def show(status, elapsed: float) -> None:
            live.update(f"[bold]{provider}[/] job: {status.state}  ({elapsed:,.0f} s)")

        meta = run_tune(request, data=data, show=show,
                        log=lambda msg: console.print(msg, highlight=False))
    console.print(f"job {meta['job']['id']} {meta['job']['state']}: tuned model "
                  f"{meta['model']} recorded in {out / 'medner.json'}", highlight=False)
    console.print(f"next: medner evaluate {out} --data DEV_OR_TEST", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(hosted_app, name="hosted")
