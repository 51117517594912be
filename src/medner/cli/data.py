"""`medner data ...`: inspect, convert, split and leak-check corpora."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medner.io import FORMATS, Corpus, read_corpus, write_corpus
from medner.io.base import ReadReport
from medner.labels import LabelSchema, apply_schema, get_schema
from medner.split import check_leak, split_documents

console = Console()
data_app = typer.Typer(help="Inspect, convert, split and leak-check corpora.", no_args_is_help=True)

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", "-f", help=f"Input format ({', '.join(FORMATS)}); guessed if omitted."
    ),
]
MismatchOption = Annotated[
    str,
    typer.Option(
        "--on-mismatch",
        help="What to do with a mention whose offsets do not reproduce its text: "
        "'error' stops with file and line, 'skip' drops it and reports how many.",
    ),
]
LabelsOption = Annotated[
    str | None,
    typer.Option(
        "--labels",
        help="Map labels onto a schema (bc5cdr, ncbi-disease, clinical4, or a TOML/JSON file).",
    ),
]


def load(path: Path, fmt: str | None, on_mismatch: str) -> Corpus:
    if on_mismatch not in ("error", "skip"):
        raise typer.BadParameter("must be 'error' or 'skip'", param_hint="--on-mismatch")
    return read_corpus(path, fmt, on_mismatch=on_mismatch)  # type: ignore[arg-type]


def corpus_stats(corpus: Corpus, schema: LabelSchema | None = None) -> dict:
    """Counts of documents, characters, spans and relations by label (and after a schema)."""
    docs = corpus.documents
    stats: dict = {
        "path": corpus.path,
        "format": corpus.format,
        "documents": len(docs),
        "distinct_ids": len({d.id for d in docs}),
        "characters": sum(len(d.text) for d in docs),
        "spans": dict(sorted(Counter(s.label for d in docs for s in d.spans).items())),
        "discontinuous_spans": sum(bool(s.fragments) for d in docs for s in d.spans),
        "relations": dict(sorted(Counter(r.label for d in docs for r in d.relations).items())),
        "attributes": dict(sorted(Counter(f"{name}={value}" for d in docs for s in d.spans
                                          for name, value in s.attributes).items())),
        "read_report": dict(sorted(corpus.report.counts.items())),
    }
    if schema is not None:
        mapped, dropped = apply_schema(docs, schema)
        stats["schema"] = schema.name
        stats["schema_spans"] = {
            label: sum(s.label == label for d in mapped for s in d.spans) for label in schema.labels
        }
        stats["schema_dropped"] = dict(sorted(dropped.items()))
    return stats


def counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("label")
    table.add_column("count", justify="right")
    for label, count in counts.items():
        table.add_row(label, f"{count:,}")
    return table


def print_report(report: ReadReport) -> None:
    if report.counts:
        console.print(
            counts_table(
                "Read report (kept aside, skipped or not grounded)",
                dict(sorted(report.counts.items())),
            )
        )
        for example in report.examples[:5]:
            console.print(f"  e.g. {example}", highlight=False)


@data_app.command("stats")
def stats_command(
    paths: Annotated[list[Path], typer.Argument(help="Corpus files or brat folders.")],
    fmt: FormatOption = None,
    labels: LabelsOption = None,
    on_mismatch: MismatchOption = "error",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Count documents, mentions per label and relations in each corpus."""
    schema = get_schema(labels) if labels else None
    all_stats = [corpus_stats(load(p, fmt, on_mismatch), schema) for p in paths]
    if as_json:
        print(json.dumps(all_stats if len(all_stats) > 1 else all_stats[0], indent=2))
        return
    for st in all_stats:
        console.print(
            f"[bold]{st['path']}[/] ({st['format']}): {st['documents']:,} documents "
            f"({st['distinct_ids']:,} distinct ids), {st['characters']:,} characters, "
            f"{st['discontinuous_spans']:,} discontinuous mentions"
        )
        console.print(counts_table("Mentions", st["spans"]))
        if st["relations"]:
            console.print(counts_table("Relations", st["relations"]))
        if st["attributes"]:
            console.print(counts_table("Span attributes", st["attributes"]))
        if schema is not None:
            console.print(counts_table(f"Mentions in schema {schema.name}", st["schema_spans"]))
        if st["read_report"]:
            console.print(counts_table("Read report", st["read_report"]))


@data_app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(help="Input corpus file or brat folder.")],
    target: Annotated[Path, typer.Argument(help="Output file (or folder for brat).")],
    fmt: FormatOption = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Output format; guessed from TARGET if omitted.")
    ] = None,
    labels: LabelsOption = None,
    on_mismatch: MismatchOption = "error",
) -> None:
    """Convert a corpus between formats through medner's document model."""
    corpus = load(source, fmt, on_mismatch)
    documents = corpus.documents
    if labels:
        documents, dropped = apply_schema(documents, get_schema(labels))
        if dropped:
            console.print(counts_table("Dropped by the label schema", dict(dropped)))
    written = write_corpus(documents, target, to)
    print_report(corpus.report)
    console.print(f"wrote {len(documents):,} documents to {target} ({written})", highlight=False)


@data_app.command("split")
def split_command(
    source: Annotated[Path, typer.Argument(help="Corpus to split by document.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for train/dev/test.")],
    fmt: FormatOption = None,
    to: Annotated[str, typer.Option("--to", help="Output format of the parts.")] = "jsonl",
    ratios: Annotated[
        str, typer.Option(help="Train/dev/test fractions, comma-separated, summing to 1.")
    ] = "0.8,0.1,0.1",
    seed: Annotated[
        int, typer.Option(help="Shuffle seed: the same seed gives the same split.")
    ] = 13,
    on_mismatch: MismatchOption = "error",
) -> None:
    """Split whole documents into train/dev/test; documents with equal text stay together."""
    try:
        fractions = [float(x) for x in ratios.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"not a list of numbers: {ratios!r}", param_hint="--ratios"
        ) from None
    corpus = load(source, fmt, on_mismatch)
    parts = split_documents(corpus.documents, fractions, seed)
    names = ["train", "dev", "test"] if len(parts) == 3 else [f"part{i}" for i in range(len(parts))]
    extension = {
        "jsonl": ".jsonl",
        "pubtator": ".pubtator",
        "conll": ".conll",
        "bioc": ".xml",
        "instruct": ".jsonl",
        "brat": "",
    }.get(to, "")
    for name, docs in zip(names, parts, strict=True):
        target = out_dir / f"{name}{extension}"
        write_corpus(docs, target, to)
        console.print(f"{name}: {len(docs):,} documents -> {target}", highlight=False)
    leaks = [check_leak(a, b) for i, a in enumerate(parts) for b in parts[i + 1 :]]
    console.print(
        "leak check between parts: "
        + ("[red]LEAK[/]" if any(r.leaks for r in leaks) else "no shared ids or texts")
    )


@data_app.command("check-leak")
def check_leak_command(
    a: Annotated[Path, typer.Argument(help="First corpus, e.g. the training file.")],
    b: Annotated[Path, typer.Argument(help="Second corpus, e.g. the test file.")],
    fmt: FormatOption = None,
    on_mismatch: MismatchOption = "skip",
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with status 1 when any document is shared.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    write_clean: Annotated[Path | None, typer.Option(
        "--write-clean", help="Write A without its documents found in B to this file, in A's "
        "format: e.g. a training set made safe for the dev set B.")] = None,
) -> None:
    """Find documents of B that are also in A: by id, by normalised text, and by one text
    holding the other whole (an abstract alone against title + abstract)."""
    corpus_a, corpus_b = load(a, fmt, on_mismatch), load(b, fmt, on_mismatch)
    report = check_leak(corpus_a.documents, corpus_b.documents)
    if write_clean is not None:
        leaked = report.leaked_ids(side=0)
        kept = [doc for doc in corpus_a.documents if doc.id not in leaked]
        write_corpus(kept, write_clean, corpus_a.format)
        console.print(f"{write_clean}: {len(kept):,} of {len(corpus_a.documents):,} documents "
                      f"of A ({corpus_a.format}), {len(corpus_a.documents) - len(kept):,} found "
                      "in B left out", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table(title=f"Documents of {b} also in {a}", title_justify="left")
        table.add_column("check")
        table.add_column("count", justify="right")
        table.add_row("documents in A / B", f"{report.size_a:,} / {report.size_b:,}")
        table.add_row("B documents whose id is in A", f"{len(report.shared_ids):,}")
        table.add_row("B documents whose text is in A", f"{len(report.shared_texts):,}")
        table.add_row(
            "distinct B texts also in A",
            f"{report.leaked_texts_b:,} of {report.distinct_texts_b:,}",
        )
        table.add_row("A/B pairs where one text holds the other whole",
                      f"{len(report.contained_texts):,}")
        console.print(table)
        verdict = "[bold red]LEAK[/]: shared documents" if report.leaks else "[green]no leak[/]"
        console.print(verdict)
    if strict and report.leaks:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
