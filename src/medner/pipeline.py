"""A model folder's whole chain: its backend's entity model, then the stages saved inside
the folder: ``assertion/`` (``medner.assertion``) marks each span present, absent or
possible, ``linker/`` (a concept index, ``medner kb build``) links spans to concept IDs,
``relations/`` (``medner.relations``) finds relations between linked concepts.

``medner.backends.load`` returns a ``Pipeline`` when a folder holds a stage, so ``extract``,
``evaluate``, ``serve``, batch and Ray extraction and the Python API all run the chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medner.document import Document, documents_from_texts

LINKER_FOLDER = "linker"
RELATIONS_FOLDER = "relations"
ASSERTION_FOLDER = "assertion"
STAGE_TABLES = ("link", "relations", "assertion")
LINK_FIELDS = frozenset({"sources", "threshold", "embedding_model"})


class Pipeline:
    """Behaves as its entity model (``meta``, ``labels``, ``batch_size``, ... are the
    model's), with ``predict`` and ``extract`` running the stages after it."""

    _own = ("entities", "assertion", "linker", "relations")

    def __init__(self, entities: Any, linker: Any = None, relations: Any = None,
                 assertion: Any = None) -> None:
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "linker", linker)
        object.__setattr__(self, "relations", relations)
        object.__setattr__(self, "assertion", assertion)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entities, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._own:
            object.__setattr__(self, name, value)
        else:  # settings such as batch_size belong to the entity model
            setattr(self.entities, name, value)

    @property
    def predicts_relations(self) -> bool:
        return self.relations is not None or bool(self.entities.predicts_relations)

    @property
    def stages(self) -> list[str]:
        return [name for name in self._own[1:] if getattr(self, name) is not None]

    def predict(self, documents: Iterable[Document], *, progress: bool = False,
                **options: Any) -> list[Document]:
        predicted = self.entities.predict(documents, progress=progress, **options)
        if self.assertion is not None:
            predicted = self.assertion.predict(predicted)
        if self.linker is not None:
            predicted = self.linker.link(predicted)
        if self.relations is not None:
            predicted = self.relations.predict(
                predicted, hierarchy=None if self.linker is None else self.linker.index)
        return predicted

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        return self.predict(documents_from_texts(texts, ids), progress=progress)


def with_stages(model: Any, folder: Path, *, device: str | None = None) -> Any:
    """``model`` itself, or a Pipeline when ``folder`` holds assertion, linker or relation
    stages (the neural ones on ``device``, as the entity model)."""
    linker = relations = assertion = None
    if (folder / LINKER_FOLDER).is_dir():
        from medner.linking import Linker

        linker = Linker.load(folder / LINKER_FOLDER, device=device)
    if (folder / RELATIONS_FOLDER).is_dir():
        from medner.relations import RelationModel

        relations = RelationModel.load(folder / RELATIONS_FOLDER, device=device)
    if (folder / ASSERTION_FOLDER).is_dir():
        from medner.assertion import AssertionModel

        assertion = AssertionModel.load(folder / ASSERTION_FOLDER, device=device)
    if linker is None and relations is None and assertion is None:
        return model
    return Pipeline(model, linker, relations, assertion)


def stage_tables(config_path: str | Path | None) -> dict[str, dict[str, Any]]:
    """The ``[link]``, ``[relations]`` and ``[assertion]`` tables of a training config, if it
    has them."""
    if config_path is None:
        return {}
    import tomllib

    from medner.errors import ConfigError

    try:
        raw = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read config: {exc}") from None
    tables = {name: raw[name] for name in STAGE_TABLES if name in raw}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{config_path}: [{name}] must be a table")
    unknown = sorted(set(tables.get("link", {})) - LINK_FIELDS)
    if unknown:
        raise ConfigError(f"{config_path}: [link] has no field(s) {', '.join(unknown)}; it "
                          f"takes {', '.join(sorted(LINK_FIELDS))}")
    for name in ("relations", "assertion"):
        if name in tables:
            stage_config(name, tables[name], config_path)
    return tables


def stage_config(name: str, table: dict[str, Any], config_path: str | Path):
    """The ``RelationConfig`` or ``AssertionConfig`` a config's table gives."""
    from medner.errors import ConfigError

    if name == "relations":
        from medner.relations.config import RelationConfig as settings
    else:
        from medner.assertion.config import AssertionConfig as settings
    try:
        return settings.from_dict(table)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{config_path}: [{name}]: {exc}") from None


def train_stages(folder: Path, training: Any, tables: dict[str, dict[str, Any]], *,
                 config_path: str | Path, log=print) -> list[str]:
    """Add the stages a config's ``[link]``, ``[relations]`` and ``[assertion]`` tables ask
    for to a model folder trained with ``training`` (its ``TrainingConfig``), from its
    training corpus (mentions with concept IDs, gold relations, gold assertions).

    ``[link]``: ``sources`` (more files of names, relative to the config: MeSH XML, TSV
    vocabularies, annotated corpora), ``threshold``, ``embedding_model``. ``[relations]``:
    any ``RelationConfig`` field. ``[assertion]``: any ``AssertionConfig`` field; it learns
    from the entity model's own training part, on its labels.
    """
    from medner.core.data import resolve_data_path
    from medner.io import read_corpus

    base = Path(config_path).parent
    train_path = resolve_data_path(training.train)
    # the linker and the relation model learn from the whole corpus as read (IDs, relations)
    train = read_corpus(train_path).documents if {"link", "relations"} & set(tables) else []
    done = []
    if "link" in tables:
        from medner.linking import build_index, names_from_corpus
        from medner.linking.embed import NameEmbedder
        from medner.linking.linker import DEFAULT_THRESHOLD
        from medner.linking.sources import read_source

        link = tables["link"]
        names = list(names_from_corpus(train))
        sources = [{"kind": "corpus", "path": str(train_path), "names": len(names)}]
        for name in link.get("sources", []):
            source = read_source(base / name)
            names += source.names
            sources.append({"kind": source.kind, "path": str(base / name),
                            "names": len(source.names)})
        index = build_index(names, NameEmbedder(link.get("embedding_model", "minilm-l6"),
                                                progress=True),
                            sources=sources, documents=train)
        index.meta["threshold"] = float(link.get("threshold", DEFAULT_THRESHOLD))
        index.save(folder / LINKER_FOLDER)
        log(f"linker: {len(index.concepts):,} concepts, {len(index.entries):,} names")
        done.append("linker")
    if "relations" in tables:
        from medner.relations import train_relations

        train_relations(train, out=folder / RELATIONS_FOLDER,
                        config=stage_config("relations", tables["relations"], config_path),
                        log=log)
        done.append("relations")
    if "assertion" in tables:
        from medner.assertion import train_assertion
        from medner.core.data import load_data

        train_assertion(load_data(training, log).train, out=folder / ASSERTION_FOLDER,
                        config=stage_config("assertion", tables["assertion"], config_path),
                        progress=True, log=log)
        done.append("assertion")
    return done


__all__ = ["ASSERTION_FOLDER", "LINKER_FOLDER", "RELATIONS_FOLDER", "Pipeline", "stage_tables",
           "train_stages", "with_stages"]
