"""What an interrupted training run resumes from: the state after its last finished epoch.

Saved in the work folder beside the model folder (``<out>.train/checkpoint.pt``, see
``medner.core.training.work_folder``), replaced atomically after every epoch and removed
once the model folder is written. A checkpoint records the config and training data it was
written for; resuming with others is an error rather than a silent mix.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medner.errors import MednerError

CHECKPOINT = "checkpoint.pt"


@dataclass
class Progress:
    epoch: int = 0
    """Epochs finished."""
    history: list[dict[str, Any]] = field(default_factory=list)
    best_f1: float = -1.0
    best_state: dict[str, Any] | None = None
    """The network's weights after the epoch with the best held-out F1."""
    seconds: float = 0.0
    """Time spent in the epochs so far, interrupted runs included."""


@dataclass
class TrainingState:
    """Everything an epoch changes: weights, optimiser, schedule, shuffling and dropout RNGs."""

    network: Any
    optimizer: Any
    schedule: Any
    order: random.Random


def save_checkpoint(work_dir: Path, identity: dict[str, Any], state: TrainingState,
                    progress: Progress) -> None:
    import torch

    work_dir.mkdir(parents=True, exist_ok=True)
    data = {"identity": identity, "network": state.network.state_dict(),
            "optimizer": state.optimizer.state_dict(), "schedule": state.schedule.state_dict(),
            "order": state.order.getstate(), "torch_rng": torch.get_rng_state(),
            "progress": vars(progress)}
    partial = work_dir / f"{CHECKPOINT}.partial"
    torch.save(data, partial)
    os.replace(partial, work_dir / CHECKPOINT)


def load_checkpoint(work_dir: Path, identity: dict[str, Any], state: TrainingState
                    ) -> Progress | None:
    """Restore ``state`` from the work folder's checkpoint; None when there is none."""
    import torch

    path = work_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise MednerError(f"{path}: unreadable checkpoint ({exc}); delete it to start "
                          "again") from None
    differing = sorted(k for k in {*identity, *data["identity"]}
                       if identity.get(k) != data["identity"].get(k))
    if differing:
        raise MednerError(f"{path}: written for another run (differs in "
                          f"{', '.join(differing)}); delete it, or resume with the same "
                          "config and documents")
    try:
        state.network.load_state_dict(data["network"])
    except RuntimeError as exc:
        raise MednerError(f"{path}: its weights do not fit this network ({exc}); delete it to "
                          "start again") from None
    state.optimizer.load_state_dict(data["optimizer"])
    state.schedule.load_state_dict(data["schedule"])
    state.order.setstate(data["order"])
    torch.set_rng_state(data["torch_rng"])
    return Progress(**data["progress"])


def remove_checkpoint(work_dir: Path) -> None:
    (work_dir / CHECKPOINT).unlink(missing_ok=True)
    if work_dir.is_dir() and not any(work_dir.iterdir()):
        work_dir.rmdir()
