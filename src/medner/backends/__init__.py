"""Backends, looked up by name. A model folder's ``medner.json`` names its backend.

Each backend module exposes ``load(path, ...)`` returning an object with
``extract(texts) -> list[Document]`` and ``predict(documents) -> list[Document]``. A folder
that also holds linking or relation stages loads as a ``medner.pipeline.Pipeline``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

from medner.errors import MednerError

BACKENDS: dict[str, str] = {
    "encoder": "medner.backends.encoder",
    "llm": "medner.backends.llm",
    "hosted": "medner.backends.hosted",
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
         threads: int | None = None, **options):
    """Load any trained medner model folder; ``medner.json`` says which backend reads it.

    ``options`` are backend-specific (``constrained=True`` for LLM folders); ``None`` values
    keep the folder's saved setting, and an option the backend does not have is an error.
    """
    from medner.core.folder import read_medner_json

    if str(path).startswith("hosted:"):  # a `hosted:PROVIDER:MODEL` reference, not a folder
        target: str | Path = str(path)
        backend = "hosted"
    else:
        target = Path(path)
        if not target.is_dir():
            raise MednerError(f"model folder {target} does not exist (train one with "
                              "`medner train`, or pass the folder it wrote with --out)")
        backend = str(read_medner_json(target)["backend"])
    module = backend_module(backend)
    given = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(inspect.signature(module.load).parameters))
    if unknown:
        raise MednerError(f"{target} is a {backend} model: option(s) "
                          f"{', '.join('--' + n.replace('_', '-') for n in unknown)} do not "
                          "apply to it")
    model = module.load(target, bf16=bf16, batch_size=batch_size, threads=threads, **given)
    if isinstance(target, str):
        return model
    from medner.pipeline import with_stages

    return with_stages(model, target, device=given.get("device"))

__all__ = ["BACKENDS", "backend_module", "load"]
