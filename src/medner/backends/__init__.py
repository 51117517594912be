"""Backends, looked up by name. A model folder's ``medner.json`` names its backend.

Each backend module exposes ``load(path, ...)`` returning an object with
``extract(texts) -> list[Document]`` and ``predict(documents) -> list[Document]``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from medner.errors import MednerError

BACKENDS: dict[str, str] = {
    "encoder": "medner.backends.encoder",
    "llm": "medner.backends.llm",
}


def backend_module(name: str) -> ModuleType:
    try:
        module_name = BACKENDS[name]
    except KeyError:
        raise MednerError(f"unknown backend {name!r}; choose one of: "
                          f"{', '.join(sorted(BACKENDS))}") from None
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise MednerError(f"backend {name!r} is not available in this version of "
                              "medner") from None
        raise MednerError(f"backend {name!r} needs {exc.name!r}, which is not installed; "
                          "install medner's extras: pip install 'medner[train]' "
                          "(with torch==2.13.0 in the same command)") from None


def load(path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
         threads: int | None = None):
    """Load any trained medner model folder; ``medner.json`` says which backend reads it."""
    from medner.backends.encoder.folder import read_medner_json

    folder = Path(path)
    if not folder.is_dir():
        raise MednerError(f"model folder {folder} does not exist (train one with "
                          "`medner train`, or pass the folder it wrote with --out)")
    meta = read_medner_json(folder)
    module = backend_module(str(meta["backend"]))
    return module.load(folder, bf16=bf16, batch_size=batch_size, threads=threads)


__all__ = ["BACKENDS", "backend_module", "load"]
