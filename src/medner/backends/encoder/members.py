"""Reading an ensemble folder (``medner ensemble``): where its members' weights are and how
their word probabilities are averaged.

The folder is the first member's folder plus ``members/1``, ``members/2``, ... holding the
other members' weights, listed under ``ensemble`` in ``medner.json``. ``model.py`` reads
ensembles through this module; ``ensemble.py`` builds them. This module imports nothing of
the model, so the model and the builder do not import each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medner.backends.encoder.predict import LogitsFunction, log_softmax
from medner.errors import MednerError

MEMBERS_FOLDER = "members"
MEMBER_FILES = ("config.json", "model.safetensors")
"""Per extra member; the tokenizer, tags and settings are the first member's."""

def member_paths(folder: Path, meta: dict[str, Any]) -> list[Path]:
    """The extra members' weight folders of an ensemble folder ([] for a single model);
    a missing file is an error that names it."""
    paths = []
    for rel in (meta.get("ensemble") or {}).get("members", []):
        path = folder / rel
        missing = [name for name in MEMBER_FILES if not (path / name).is_file()]
        if missing:
            raise MednerError(f"model folder {folder} is incomplete: ensemble member {rel} is "
                              f"missing {', '.join(missing)}")
        paths.append(path)
    return paths

def ensemble_logits(members: Sequence[LogitsFunction]) -> LogitsFunction:
    """One logits function for several models: the log of their mean word probabilities
    (already normalised, so ``run_windows``' log-softmax leaves it as it is)."""

    def logits(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        stack = np.stack([log_softmax(member(input_ids, attention_mask)) for member in members])
        top = stack.max(axis=0)
        return top + np.log(np.exp(stack - top).mean(axis=0))

    return logits

__all__ = ["MEMBERS_FOLDER", "MEMBER_FILES", "ensemble_logits", "member_paths"]
