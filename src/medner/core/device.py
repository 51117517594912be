"""The device rule and numeric precision shared by every backend and command.

Device: ``auto`` (the default everywhere, also when a caller passes ``None``) is the first
CUDA GPU when torch sees one, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` choose. A CUDA
device on a machine without one is a clear error, not a torch trace.

Precision, when the caller leaves it open, follows the device: bf16 where the device computes
it natively (a CUDA GPU of compute capability 8 or more; a CPU with AVX512-BF16 or AMX),
fp16 with loss scaling for training on older GPUs, fp32 otherwise. ``MEDNER_PRECISION``
overrides that default for every command, load and training run of the process, so that a
run (or a test suite) computes alike on any machine:

- ``auto`` (or unset): the device's default above;
- ``fp32``: never bf16 or fp16 unless a caller asks for bf16 explicitly;
- ``bf16``: bf16 even where the device only emulates it (slow; for checking the bf16 path).

An explicit ``bf16=True/False`` given to a loader, a config or a command always wins.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from medner.errors import MednerError

PRECISION_ENV = "MEDNER_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")
AUTO = "auto"
DEVICE_HELP = ("Torch device: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda, "
               "cuda:1, ...")

Precision = Literal["bf16", "fp16", "fp32"]


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether the CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cuda_capability(device: str) -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability(torch.device(device))


def resolve_device(device: str | None = None, *, what: str | Path | None = None) -> str:
    """The torch device string for ``device`` (``None`` and ``auto``: CUDA if any, else CPU).

    An unknown name, or CUDA where torch sees none, raises a MednerError that names ``what``
    (the model folder, the option) when given.
    """
    choice = (device or AUTO).strip().lower()
    if choice == AUTO:
        return "cuda" if cuda_available() else "cpu"
    where = f"{what}: " if what else ""
    import torch

    try:
        target = torch.device(choice)
    except RuntimeError:
        raise MednerError(f"{where}device {device!r}: not a device (auto, cpu, cuda, cuda:1, "
                          "...)") from None
    if target.type == "cpu":
        return "cpu"
    if target.type != "cuda":
        raise MednerError(f"{where}device {device!r}: medner runs on cpu or cuda")
    if not cuda_available():
        raise MednerError(f"{where}device {device!r} asked for, but torch sees no CUDA GPU "
                          "here (use --device auto or cpu)")
    count = torch.cuda.device_count()
    if target.index is not None and target.index >= count:
        raise MednerError(f"{where}device {device!r}: torch sees {count} CUDA GPU(s), "
                          f"cuda:0 to cuda:{count - 1}")
    return str(target)


def native_bf16(device: str) -> bool:
    """Whether ``device`` (a resolved device string) computes bf16 natively."""
    if device.startswith("cuda"):
        return cuda_capability(device)[0] >= 8
    return cpu_supports_bf16()


def _precision_choice() -> str:
    choice = os.environ.get(PRECISION_ENV, AUTO).strip().lower() or AUTO
    if choice not in PRECISIONS:
        raise MednerError(f"{PRECISION_ENV}={choice!r}: expected one of {', '.join(PRECISIONS)}")
    return choice


def default_bf16(device: str = "cpu") -> bool:
    """bf16 or not when the caller leaves it open: ``MEDNER_PRECISION``, else the device."""
    choice = _precision_choice()
    if choice == AUTO:
        return native_bf16(device)
    return choice == "bf16"


def resolve_bf16(bf16: bool | None, device: str = "cpu") -> bool:
    """An explicit choice, or the default for ``device`` (``default_bf16``) when None."""
    return default_bf16(device) if bf16 is None else bf16


def training_device() -> str:
    """Where a training run's Trainer computes: the GPU when torch sees one (``accelerate
    launch`` gives each process its own), else the CPU."""
    return resolve_device(AUTO)


def training_precision(bf16: bool | None, device: str) -> Precision:
    """bf16, fp16 or fp32 for a training run on ``device``.

    An explicit ``bf16`` wins (False: fp32). Left open: bf16 where the device has it
    natively; on a CUDA GPU without it (compute capability < 8), fp16 with the Trainer's
    loss scaling, unless ``MEDNER_PRECISION=fp32``; else fp32.
    """
    if bf16 is not None:
        return "bf16" if bf16 else "fp32"
    if default_bf16(device):
        return "bf16"
    if device.startswith("cuda") and _precision_choice() == AUTO:
        return "fp16"
    return "fp32"


def batch_size_for(device: str, saved: int, on_gpu: int) -> int:
    """A prediction batch size for ``device`` when the caller gives none: the folder's
    ``saved`` size (chosen for a CPU), raised to ``on_gpu`` on a GPU, where larger batches
    keep the card busy and memory is ample for these model sizes."""
    return max(saved, on_gpu) if device.startswith("cuda") else saved
