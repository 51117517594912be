"""Numeric precision (and, with it, the device rule) shared by every backend.

The default precision depends on the CPU: bf16 pays only with native bf16 instructions, so
it is on where the CPU has them and off elsewhere. ``MEDNER_PRECISION`` overrides that
default for every command, load and training run of the process, so that a run (or a test
suite) can be made to compute alike on any CPU:

- ``auto`` (or unset): bf16 where the CPU supports it natively, else fp32;
- ``fp32``: never bf16 unless a caller asks for it explicitly;
- ``bf16``: bf16 even where the CPU only emulates it (slow; for checking the bf16 path).

An explicit ``bf16=True/False`` given to a loader, a config or a command always wins.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from medner.errors import MednerError

PRECISION_ENV = "MEDNER_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether the CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_bf16() -> bool:
    """bf16 or not when the caller leaves it open: ``MEDNER_PRECISION``, else the CPU."""
    choice = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if choice not in PRECISIONS:
        raise MednerError(f"{PRECISION_ENV}={choice!r}: expected one of {', '.join(PRECISIONS)}")
    if choice == "auto":
        return cpu_supports_bf16()
    return choice == "bf16"


def resolve_bf16(bf16: bool | None) -> bool:
    """An explicit choice, or the default (``default_bf16``) when ``bf16`` is None."""
    return default_bf16() if bf16 is None else bf16


def move_to_device(model, device: str | None, folder: Path):
    """``model`` on ``device`` ("cpu", "cuda", "cuda:1", ...); ``None`` leaves it on the CPU.

    An unknown device or CUDA on a machine without it is a clear error, not a torch trace.
    """
    if device is None:
        return model
    import torch

    try:
        target = torch.device(device)
    except RuntimeError:
        raise MednerError(f"device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)"
                          ) from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise MednerError(f"model folder {folder}: device {device!r} asked for, but torch sees "
                          "no CUDA GPU here")
    return model.to(target)
