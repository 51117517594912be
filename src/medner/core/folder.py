"""The model folder every backend writes: ``medner.json`` and atomic saving.

Written atomically: everything goes into a hidden temp sibling folder that is renamed
into place at the end, so an interrupted save never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medner.errors import MednerError
from medner.labels import LabelSchema

MEDNER_JSON = "medner.json"
FORMAT_VERSION = 1


def atomic_folder(out: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)`` and rename the folder to ``out`` only when it returns.

    An existing ``out`` is replaced only after the new folder is complete.
    """
    target = Path(out).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path, missing: str) -> Any:
    """The JSON in ``path``; a missing file is the error ``f"{path}: {missing}"``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MednerError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MednerError(f"{path}: unreadable ({exc})") from None


def read_medner_json(folder: Path) -> dict[str, Any]:
    path = folder / MEDNER_JSON
    meta = read_json(path, f"missing; {folder} is not a medner model folder")
    if not isinstance(meta, dict) or "backend" not in meta:
        raise MednerError(f"{path}: no 'backend' field; not a medner model folder")
    return meta


class SchemaFromMeta:
    """A loaded model's label schema and labels, read from its ``medner.json`` (``meta``)."""

    meta: dict[str, Any]

    @property
    def schema(self) -> LabelSchema:
        return LabelSchema.from_dict(self.meta["schema"])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.schema.labels

    @property
    def predicts_relations(self) -> bool:
        """Whether the model answers relations: prompted models whose template asks for
        them (an entity model alone never does; a relation stage makes a Pipeline)."""
        return any(task.kind == "relations" for task in getattr(self, "tasks", ()))


def check_stage_folder(folder: Path, backend: str, what: str, files: Sequence[str],
                       fields: Sequence[str]) -> dict[str, Any]:
    """A stage folder's ``medner.json`` (``what``: "relation model"), after checking the folder
    has ``files``, was written by ``backend`` and records ``fields``."""
    if not folder.is_dir():
        raise MednerError(f"{what} folder {folder} does not exist")
    missing = [name for name in (MEDNER_JSON, *files) if not (folder / name).is_file()]
    if missing:
        raise MednerError(f"{what} folder {folder} is incomplete: missing {', '.join(missing)}")
    meta = read_medner_json(folder)
    if meta["backend"] != backend:
        raise MednerError(f"{folder / MEDNER_JSON}: backend is {meta['backend']!r}, not "
                          f"{backend!r}; load it with medner.load")
    for field in fields:
        if field not in meta:
            raise MednerError(f"{folder / MEDNER_JSON}: no {field!r} field")
    return meta


def folder_header(backend: str, out: str | Path) -> dict[str, Any]:
    """The first fields of every ``medner.json``: what wrote it, when, and for which name."""
    return {"backend": backend, "format_version": FORMAT_VERSION,
            "medner_version": medner_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "folder_name": Path(out).name}


@contextmanager
def loading_weights(folder: str | Path) -> Iterator[None]:
    """Load weights quietly (no progress bars: `medner extract` prints only its results), an
    unreadable file an error that names the folder."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    except (OSError, ValueError) as exc:
        raise MednerError(f"model folder {folder}: cannot load weights or tokenizer: "
                          f"{exc}") from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def medner_version() -> str:
    try:
        from importlib.metadata import version

        return version("medner")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still trains
        return "unknown"
