"""The Trainer set-up every training run shares: arguments, resume, saving, clean-up.

The encoder (``Trainer``), the LLM (trl's ``SFTTrainer``) and pretraining (``Trainer``) each
add only what differs: their datasets, collators, metrics and the files of their folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medner.core.data import Log
from medner.core.device import Precision, training_device, training_precision
from medner.core.folder import atomic_folder


@dataclass(frozen=True)
class RunPrecision:
    """Where a training run computes and in which precision (``core.device``'s rule)."""

    device: str
    precision: Precision

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def record(self) -> dict[str, Any]:
        """What ``medner.json`` keeps of it: the device by name, so a folder says what card
        (or CPU) trained it."""
        return {"bf16": self.bf16, "precision": self.precision,
                "trained_on": device_name(self.device)}


def run_precision(bf16: bool | None) -> RunPrecision:
    """The device and precision of a training run whose config says ``bf16`` (None: open)."""
    device = training_device()
    return RunPrecision(device, training_precision(bf16, device))


def device_name(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"


def work_folder(out: str | Path, suffix: str = ".train") -> Path:
    """Where checkpoints go while ``out`` is trained (a sibling, removed when it is saved)."""
    return Path(str(Path(out).resolve()) + suffix)


def common_arguments(config: Any, work_dir: Path, *, precision: RunPrecision, progress: bool,
                     selection: str | None, eval_steps: int | None, save_total_limit: int = 2
                     ) -> dict[str, Any]:
    """``TrainingArguments`` (or ``SFTConfig``) keywords every medner run sets alike.

    ``config`` has batch_size, learning_rate, epochs, max_steps, warmup, weight_decay,
    report_to and seed (and scheduler, where it has one). ``selection`` names the dev metric
    that picks the best checkpoint (None: no dev set, no evaluation); with ``eval_steps``
    None evaluation and saving happen once an epoch.
    """
    report_to: Sequence[str] = config.report_to
    if "tensorboard" in report_to:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(work_dir / "runs"))
    strategy = "steps" if eval_steps else "epoch"
    arguments = {
        "output_dir": str(work_dir),
        "per_device_train_batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "warmup_steps": config.warmup,
        "weight_decay": config.weight_decay,
        "eval_strategy": strategy if selection else "no",
        "save_strategy": strategy,
        "eval_steps": eval_steps,
        "save_steps": eval_steps,
        "load_best_model_at_end": bool(selection),
        "metric_for_best_model": selection,
        "greater_is_better": True if selection else None,
        "save_total_limit": save_total_limit,
        "bf16": precision.bf16,
        "fp16": precision.precision == "fp16",  # older GPUs: the Trainer scales the loss
        "use_cpu": precision.device == "cpu",
        "report_to": list(report_to) or "none",
        "seed": config.seed,
        "data_seed": config.seed,
        "disable_tqdm": not progress,
        "dataloader_num_workers": 0,
    }
    if getattr(config, "scheduler", None):
        arguments["lr_scheduler_type"] = config.scheduler
    return arguments


def resume_checkpoint(work_dir: Path, resume: bool, log: Log) -> str | None:
    """The latest checkpoint in ``work_dir`` when ``resume`` is asked for, else None."""
    if not resume:
        return None
    checkpoints = sorted(work_dir.glob("checkpoint-*"), key=lambda p: step_of(p.name) or 0)
    if not checkpoints:
        log(f"--resume: no checkpoint in {work_dir}; starting from the beginning")
        return None
    log(f"resuming from {checkpoints[-1]}")
    return str(checkpoints[-1])


def step_of(checkpoint: str | Path | None) -> int | None:
    """The step of a ``checkpoint-N`` folder; None for no checkpoint or another name."""
    if not checkpoint:
        return None
    try:
        return int(Path(checkpoint).name.split("-")[-1])
    except ValueError:
        return None


def save_run(trainer, out: str | Path, work_dir: Path, write: Callable[[Path, Path], None]
             ) -> Path | None:
    """Write the trained model folder ``out`` atomically and remove the run's checkpoints;
    its path, or None in the other processes of an ``accelerate launch``.

    Every process saves through the Trainer first: under FSDP or DeepSpeed ZeRO-3 the weights
    are sharded over the processes, and ``Trainer.save_model`` gathers them (process 0
    writes). Then ``write(folder, staging)`` fills the new folder from the saved ``staging``
    folder; under ``accelerate launch`` only process 0 does.
    """
    staging = work_dir / "final"
    trainer.save_model(str(staging))
    if not trainer.is_world_process_zero():
        return None
    path = atomic_folder(out, lambda folder: write(folder, staging))
    for checkpoint in [staging, *work_dir.glob("checkpoint-*")]:
        shutil.rmtree(checkpoint, ignore_errors=True)
    (work_dir / "README.md").unlink(missing_ok=True)  # trl's model card of the work folder
    if work_dir.exists() and not any(work_dir.iterdir()):
        work_dir.rmdir()
    return path


__all__ = ["RunPrecision", "common_arguments", "device_name", "resume_checkpoint",
           "run_precision", "save_run", "step_of", "work_folder"]
