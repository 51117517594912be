"""``medner kb``: build and inspect concept indexes for linking spans to concept IDs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medner.errors import MednerError

kb_app = typer.Typer(help="Build and inspect concept indexes (entity linking to MeSH and "
                     "other vocabularies).", no_args_is_help=True)


@kb_app.command("build")
def build_command(
    corpus: Annotated[list[Path] | None, typer.Option(
        "--corpus", help="An annotated corpus whose mentions carry concept IDs (BC5CDR, "
        "NCBI-disease PubTator, BioC, JSONL, ...). Repeat for several. Never the data you "
        "will score on.")] = None,
    mesh: Annotated[list[Path] | None, typer.Option(
        "--mesh", help="NLM MeSH XML: descriptors (desc20XX.xml) or supplementary records "
        "(supp20XX.xml). Repeat for several.")] = None,
    tsv: Annotated[list[Path] | None, typer.Option(
        "--tsv", help="A vocabulary as TSV: id, name, |-separated synonyms, optional "
        "label. Repeat for several.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="The index folder to write.", show_default=False)] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="Instead of --out: write the index into this model folder (as "
        "linker/), so that everything the model extracts is linked.",
        show_default=False)] = None,
    embedding_model: Annotated[str, typer.Option(
        "--embedding-model", help="Sentence-embedding model for names that no string key "
        "matches (packaged alias, folder or hub id).")] = "minilm-l6",
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Least cosine similarity at which an embedding match links a "
        "span.")] = 0.8,
) -> None:
    """Gather concept names into an index folder (written atomically)."""
    from rich.console import Console

    from medner.io import read_corpus
    from medner.linking import build_index, names_from_corpus, read_mesh_xml, read_tsv
    from medner.linking.embed import NameEmbedder
    from medner.pipeline import LINKER_FOLDER

    if (out is None) == (model is None):
        raise MednerError("kb build: give exactly one of --out FOLDER and --model MODEL")
    if not 0 < threshold <= 1:
        raise MednerError(f"kb build: --threshold {threshold} must be in (0, 1]")
    target = out if out is not None else model / LINKER_FOLDER
    if model is not None and not (model / "medner.json").is_file():
        raise MednerError(f"kb build: {model} is not a medner model folder")
    names, sources, documents = [], [], []
    for path in corpus or []:
        read = read_corpus(path)
        found = list(names_from_corpus(read.documents))
        if not found:
            raise MednerError(f"{path}: no mention carries a concept ID; it cannot teach "
                              "names to concepts")
        names += found
        documents += read.documents
        sources.append({"kind": "corpus", "path": str(path), "names": len(found)})
    for kind, paths, reader in (("mesh", mesh, read_mesh_xml), ("tsv", tsv, read_tsv)):
        for path in paths or []:
            found = list(reader(path))
            names += found
            sources.append({"kind": kind, "path": str(path), "names": len(found)})
    if not sources:
        raise MednerError("kb build: give at least one --corpus, --mesh or --tsv")
    index = build_index(names, NameEmbedder(embedding_model), sources=sources,
                        documents=documents)
    index.meta["threshold"] = threshold
    written = index.save(target)
    Console(stderr=True).print(f"{index.meta['concepts']:,} concepts, {len(index.entries):,} "
                               f"names -> {written}", highlight=False)


@kb_app.command("show")
def show_command(
    index_folder: Annotated[Path, typer.Argument(help="An index folder, or a model folder "
                                                 "holding linker/.")],
    concepts: Annotated[list[str], typer.Argument(help="Concept IDs to show.")],
) -> None:
    """Each concept's preferred name, label and every name the index links to it."""
    from medner.linking import ConceptIndex
    from medner.pipeline import LINKER_FOLDER

    folder = index_folder / LINKER_FOLDER if (index_folder / LINKER_FOLDER).is_dir() \
        else index_folder
    index = ConceptIndex.load(folder)
    missing = [c for c in concepts if c not in index.concepts]
    if missing:
        raise MednerError(f"{folder}: concept ID(s) not in the index: {', '.join(missing)}")
    for concept in concepts:
        info = index.concepts[concept]
        names = sorted({e.name for e in index.entries if e.concepts == (concept,)})
        typer.echo(f"{concept}\t{info['label']}\t{info['name']}\t{' | '.join(names)}")


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
