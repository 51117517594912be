"""A model folder's whole chain: its backend's entity model, then the stages saved inside
the folder: ``linker/`` (a concept index, ``medner kb build``) links spans to concept IDs,
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


class Pipeline:
    """Behaves as its entity model (``meta``, ``labels``, ``batch_size``, ... are the
    model's), with ``predict`` and ``extract`` running the stages after it."""

    _own = ("entities", "linker", "relations")

    def __init__(self, entities: Any, linker: Any = None, relations: Any = None) -> None:
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "linker", linker)
        object.__setattr__(self, "relations", relations)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entities, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._own:
            object.__setattr__(self, name, value)
        else:  # settings such as batch_size belong to the entity model
            setattr(self.entities, name, value)

    @property
    def stages(self) -> list[str]:
        return [name for name in ("linker", "relations") if getattr(self, name) is not None]

    def predict(self, documents: Iterable[Document], *, progress: bool = False,
                **options: Any) -> list[Document]:
        predicted = self.entities.predict(documents, progress=progress, **options)
        if self.linker is not None:
            predicted = self.linker.link(predicted)
        if self.relations is not None:
            predicted = self.relations.predict(predicted)
        return predicted

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        return self.predict(documents_from_texts(texts, ids), progress=progress)


def with_stages(model: Any, folder: Path) -> Any:
    """``model`` itself, or a Pipeline when ``folder`` holds linker or relation stages."""
    linker = relations = None
    if (folder / LINKER_FOLDER).is_dir():
        from medner.linking import Linker

        linker = Linker.load(folder / LINKER_FOLDER)
    if (folder / RELATIONS_FOLDER).is_dir():
        from medner.relations import RelationModel

        relations = RelationModel.load(folder / RELATIONS_FOLDER)
    return model if linker is None and relations is None else Pipeline(model, linker, relations)


__all__ = ["LINKER_FOLDER", "RELATIONS_FOLDER", "Pipeline", "with_stages"]
