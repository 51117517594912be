"""``medner extract MODEL``: texts from arguments, files or stdin; entities out."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional  # noqa: UP035 - typer reads annotations at runtime

import typer

from medner.cli.options import (
    Abbreviations,
    BatchSize,
    Constrained,
    MaxPromptTokens,
    RepeatPatience,
    Threads,
)
from medner.document import Document, Relation, Span
from medner.errors import MednerError

OUTPUT_FORMATS = ("text", "json", "jsonl", "pubtator", "brat")
# Formats written record by record (a resumable journal) when reading --input files.
STREAMED_FORMATS = ("jsonl", "pubtator", "brat")


def output_format_from_name(output: Path) -> str | None:
    """The format the name of ``output`` says, or ``None`` if it says none.

    The io registry's guess from the name (``medner.io.format_from_name``: an existing folder
    is brat, ``*pubtator*`` pubtator, ``.jsonl`` jsonl, ``.xml`` bioc, ...), then ``.json``
    json and ``.txt`` text, which only extract writes.
    """
    from medner.io import format_from_name

    guess = format_from_name(output)
    if guess is not None:
        return guess
    name = output.name.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".txt"):
        return "text"
    return None


def choose_output_format(fmt: str | None, output: Path | None) -> str:
    """``--format`` if given (a warning when the output's name says another), else the format
    the output's name says; text on stdout or for names that say nothing (no known suffix)."""
    if output is None:
        return fmt or "text"
    guess = output_format_from_name(output)
    if fmt is not None:
        if guess not in (None, "text", fmt):
            typer.echo(f"warning: writing {fmt} into {output}, whose name says {guess} "
                       "(--format wins)", err=True)
        return fmt
    if guess is None:
        return "text"
    if output.suffix.lower() == ".ann" and not output.is_dir():
        raise MednerError(f"--output {output}: brat output is a folder of .txt/.ann files; "
                          "give --output FOLDER (or --format to write something else)")
    if guess not in OUTPUT_FORMATS:
        raise MednerError(f"--output {output}: the name says {guess}, which extract does not "
                          f"write; give --format ({', '.join(OUTPUT_FORMATS)}), or write jsonl "
                          "and convert it with `medner data convert`")
    return guess


def read_inputs(texts: list[str], files: list[Path], input_format: str | None,
                stdin_text: str | None) -> list[Document]:
    """Documents from argument texts, then files, else stdin (one document per non-empty line)."""
    docs = [Document(str(i + 1), t) for i, t in enumerate(texts)]
    for path in files:
        docs.extend(read_input_file(path, input_format))
    if not texts and not files and stdin_text is not None:
        lines = [line for line in stdin_text.splitlines() if line.strip()]
        docs = [Document(str(i + 1), line) for i, line in enumerate(lines)]
    return docs


def read_input_file(path: Path, input_format: str | None) -> list[Document]:
    from medner.batch import iter_documents

    if not path.exists():
        raise MednerError(f"{path}: no such file")
    return list(iter_documents(path, input_format))


def entity_line(span: Span, doc: Document) -> str:
    """``Entity: X, Label: Y``, then ``, Status: absent`` when the span has an assertion and
    ``, ID: D001241 (Aspirin)`` for each linked concept."""
    names = doc.metadata.get("concepts", {})
    status = f", Status: {span.assertion}" if span.assertion is not None else ""
    concepts = "".join(f", ID: {i}" + (f" ({names[i]})" if i in names else "")
                       for i in span.ids)
    return f"Entity: {span.text}, Label: {span.label}{status}{concepts}"


def relation_line(relation: Relation, doc: Document) -> str:
    """``Relation: CID, D003042 (cocaine) -> D012640 (seizures)``."""
    names = doc.metadata.get("concepts", {})
    sides = [f"{side} ({names[side]})" if side in names else side
             for side in (relation.head, relation.tail)]
    return f"Relation: {relation.label}, {sides[0]} -> {sides[1]}"


def render(docs: list[Document], fmt: str) -> str:
    if fmt == "text":
        lines = []
        for doc in docs:
            if len(docs) > 1:
                lines.append(f"# {doc.id}")
            lines.extend(entity_line(s, doc) for s in doc.spans)
            lines.extend(relation_line(r, doc) for r in doc.relations)
        return "\n".join(lines) + ("\n" if lines else "")
    if fmt == "json":
        return json.dumps([d.to_dict() for d in docs], ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in docs)
    if fmt == "pubtator":
        from medner.io import write_corpus

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.pubtator"
            write_corpus(docs, out, "pubtator")
            return out.read_text(encoding="utf-8")
    raise MednerError(f"--format {fmt} cannot be printed; give --output")


def run_extract(model_path: Path, docs: list[Document], *, fmt: str, output: Path | None,
                progress: bool, load_options: dict[str, Any]) -> str | None:
    """Predict and write; returns the text to print (``None`` when written to ``output``).

    ``load_options`` go to ``medner.backends.load`` (batch size, threads, runtime, ...)."""
    from medner.backends import load

    if fmt not in OUTPUT_FORMATS:
        raise MednerError(f"--format {fmt!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    model = load(model_path, **load_options)
    predicted = model.predict(docs, progress=progress) if docs else []
    if output is not None:
        if fmt in ("pubtator", "brat", "jsonl"):
            from medner.io import write_corpus

            write_corpus(predicted, output, fmt)
        else:
            from medner.io import atomic_write

            with atomic_write(output) as handle:
                handle.write(render(predicted, fmt))
        return None
    if fmt == "brat":
        raise MednerError("--format brat writes a folder of .txt/.ann files: give --output DIR")
    return render(predicted, fmt)


# One piece: most of its lines are the typer option declarations of its signature, which
# are the command's --help; the body only dispatches to the batch or Ray engine.
def extract_command(
    model: Annotated[Path, typer.Argument(help="A trained model folder (from `medner train`).")],
    texts: Annotated[Optional[list[str]],  # noqa: UP045
                     typer.Argument(help="Texts to extract from.")] = None,
    input: Annotated[Optional[list[Path]], typer.Option(  # noqa: UP045
        "--input", "-i", help="Input files: any corpus format, or plain .txt (one document "
        "per file). Repeat for several.")] = None,
    input_format: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--input-format", help="Format of --input files (pubtator, brat, jsonl, ..., or "
        "'text'); default: guessed.")] = None,
    fmt: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--format", "-f", help="text (Entity/Label lines), json, jsonl, pubtator or brat. "
        "Default: from the --output name: .jsonl jsonl, .json json, a name with 'pubtator' "
        "in it (.pubtator, .PubTator.txt) pubtator, an existing folder brat, .txt or any "
        "other name text; on stdout text.",
        show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="Write here instead of stdout; its name chooses the format "
        "unless --format is given.")] = None,
    batch_size: BatchSize = None,
    threads: Threads = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="With --input and --output: skip documents already in the output "
        "(after an interruption) instead of starting over.")] = False,
    constrained: Constrained = None,
    repeat_patience: RepeatPatience = None,
    max_prompt_tokens: MaxPromptTokens = None,
    abbreviations: Abbreviations = None,
    runtime: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--runtime", help="Encoder models: torch (default) or onnx (ONNX Runtime, after "
        "`medner export-onnx MODEL`; pays on CPUs without bf16).", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--device", help="Torch device for the model: auto (a CUDA GPU when torch sees one, "
        "else the CPU), cpu, cuda, cuda:1, ... Default: auto. With --engine ray and "
        "--gpus-per-actor, each actor uses its GPU (cuda).", show_default=False)] = None,
    engine: Annotated[str, typer.Option(
        "--engine", help="With --input and --output: local (one process) or ray (Ray Data "
        "actors; --output is a folder of shards plus manifest.json).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--ray-address", help="--engine ray: the cluster to attach to (e.g. 'auto' or "
        "ray://HOST:10001); default: start a local one.", show_default=False)] = None,
    num_actors: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--num-actors", help="--engine ray: model copies running side by side; default: as "
        "many as the cluster's CPUs (GPUs) allow.", show_default=False)] = None,
    cpus_per_actor: Annotated[float, typer.Option(
        "--cpus-per-actor", help="--engine ray: CPUs reserved per actor (also its torch "
        "threads).")] = 1.0,
    gpus_per_actor: Annotated[float, typer.Option(
        "--gpus-per-actor", help="--engine ray: GPUs reserved per actor.")] = 0.0,
    ray_batch_size: Annotated[int, typer.Option(
        "--ray-batch-size", help="--engine ray: documents per actor call.")] = 64,
    shard_size: Annotated[int, typer.Option(
        "--shard-size", help="--engine ray: documents per output shard (the unit of "
        "--resume).")] = 1000,
    shard_format: Annotated[str, typer.Option(
        "--shard-format", help="--engine ray: jsonl or parquet shards.")] = "jsonl",
) -> None:
    """Extract entities. Without texts or --input, reads stdin (one document per line)."""
    texts = list(texts or [])
    files = list(input or [])
    load_options = {"batch_size": batch_size, "threads": threads, "constrained": constrained,
                    "repeat_patience": repeat_patience, "abbreviations": abbreviations,
                    "max_prompt_tokens": max_prompt_tokens,
                    "runtime": runtime, "device": device}
    if engine == "ray":
        if texts or not files or output is None:
            raise MednerError("--engine ray needs --input FILE... and --output FOLDER (no "
                              "texts)")
        if fmt is not None:
            raise MednerError(f"--format {fmt} does not apply to --engine ray, which writes "
                              "--shard-format shards (jsonl or parquet) and a manifest")
        run_ray(model, files, output, input_format=input_format, resume=resume,
                load_options=load_options,
                address=ray_address, num_actors=num_actors, cpus_per_actor=cpus_per_actor,
                gpus_per_actor=gpus_per_actor, ray_batch_size=ray_batch_size,
                shard_size=shard_size, shard_format=shard_format)
        return
    if engine != "local":
        raise MednerError(f"--engine {engine!r}: choose local or ray")
    fmt = choose_output_format(fmt, output)
    stdin_text = None
    if not texts and not files:
        if sys.stdin is None or sys.stdin.isatty():
            raise MednerError("nothing to extract from: give texts, --input FILE or pipe "
                              "text into stdin")
        stdin_text = sys.stdin.read()
    if files and output is not None and not texts and fmt in STREAMED_FORMATS:
        run_batch(model, files, output, input_format=input_format, fmt=fmt, resume=resume,
                  load_options=load_options)
        return
    if resume:
        written = f" ({output} would be {fmt})" if output is not None else ""
        raise MednerError("--resume needs --input FILE... and --output in jsonl, pubtator "
                          f"or brat format{written}")
    docs = read_inputs(texts, files, input_format, stdin_text)
    out = run_extract(model, docs, fmt=fmt, output=output, progress=bool(files),
                      load_options=load_options)
    if out is not None:
        typer.echo(out, nl=False)


def run_batch(model_path: Path, files: list[Path], output: Path, *, input_format: str | None,
              fmt: str, resume: bool, load_options: dict[str, Any]) -> None:
    """Stream files through the model into ``output``, crash-safe and resumable."""
    from medner.backends import load
    from medner.batch import extract_to_file

    model = load(model_path, **load_options)
    result = extract_to_file(model, files, output, input_format=input_format,
                             output_format=fmt, resume=resume)
    for note in result.notes:
        typer.echo(note, err=True)
    typer.echo(f"{result.documents:,} documents in {output} ({result.extracted:,} extracted, "
               f"{result.skipped:,} already there; {result.docs_per_second:.1f} docs/s)",
               err=True)


def run_ray(model_path: Path, files: list[Path], output: Path, *, input_format: str | None,
            resume: bool, load_options: dict[str, Any], **engine_options) -> None:
    """Extract on a Ray cluster into the shard folder ``output`` (``medner.distributed``)."""
    from medner.distributed import extract_with_ray

    result = extract_with_ray(model_path, files, output, input_format=input_format,
                              resume=resume, load_options=load_options, **engine_options)
    for note in result.notes:
        typer.echo(note, err=True)
    typer.echo(f"{result.documents:,} documents in {result.shards:,} shards in {output} "
               f"({result.extracted:,} extracted, {result.skipped:,} already there; "
               f"{result.docs_per_second:.1f} docs/s)", err=True)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_command)
