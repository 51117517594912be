"""``medner kb``: build and inspect concept indexes for linking spans to concept IDs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medner.errors import MednerError

kb_app = typer.Typer(help="Build and inspect concept indexes (entity linking to MeSH and "
                     "other vocabularies).", no_args_is_help=True)


def index_in(path: Path) -> Path:
    """``path`` itself, or the linker/ index of the model folder ``path``."""
    from medner.pipeline import LINKER_FOLDER

    return path / LINKER_FOLDER if (path / LINKER_FOLDER).is_dir() else path


@kb_app.command("build")
def build_command(
    sources: Annotated[list[Path], typer.Argument(
        help="Where the names come from, any mix: annotated corpora whose mentions carry "
        "concept IDs (BC5CDR or NCBI-disease PubTator, BioC, JSONL, ...; never the data you "
        "will score on), NLM MeSH XML (desc20XX.xml, supp20XX.xml) and .tsv vocabularies "
        "(id, name, |-separated synonyms, optional label).", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="The index folder to write; for a trained model folder, its "
        "linker/, so that everything the model extracts is linked.", show_default=False)],
    embedding_model: Annotated[str, typer.Option(
        "--embedding-model", help="Sentence-embedding model for names that no string key "
        "matches (packaged alias, folder or hub id).")] = "minilm-l6",
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Least cosine similarity at which an embedding match links a "
        "span.")] = 0.8,
    vectors_from: Annotated[Path | None, typer.Option(
        "--vectors-from", help="An earlier index (or a model folder holding linker/) made "
        "with the same embedding model: names it holds are not embedded again, e.g. when "
        "the same MeSH is indexed with another corpus.", show_default=False)] = None,
) -> None:
    """Gather concept names into an index folder (written atomically)."""
    from rich.console import Console

    from medner.core.folder import read_json
    from medner.linking import build_index
    from medner.linking.embed import NameEmbedder
    from medner.linking.index import INDEX_KIND
    from medner.linking.sources import read_source
    from medner.pipeline import LINKER_FOLDER

    if not 0 < threshold <= 1:
        raise MednerError(f"kb build: --threshold {threshold} must be in (0, 1]")
    target = out / LINKER_FOLDER if (out / "medner.json").is_file() and \
        read_json(out / "medner.json", "missing").get("backend") != INDEX_KIND else out
    names, documents, described = [], [], []
    for path in sources:
        source = read_source(path)
        names += source.names
        documents += source.documents
        described.append({"kind": source.kind, "path": str(path), "names": len(source.names)})
    embedder = NameEmbedder(embedding_model, progress=True)
    if vectors_from is not None:
        from medner.linking import ConceptIndex

        embedder.reuse(ConceptIndex.load(index_in(vectors_from)))
    index = build_index(names, embedder, sources=described, documents=documents)
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

    folder = index_in(index_folder)
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
