"""The machine a benchmark ran on, for its JSON record.

Speeds on a CPU depend above all on its vector instructions: torch's bf16 autocast pays
only with native bf16 (AVX512-BF16 or AMX), so the record names the CPU model and whether
it has them. Results from different CPUs are not comparable.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    """CPU model, cores, native bf16, torch threads, platform and Python version."""
    import torch

    from medner.core.device import cpu_supports_bf16

    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "native_bf16": cpu_supports_bf16(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version()}


def one_line() -> str:
    """``describe()`` as one human-readable line (the benchmark tables' "machine")."""
    info = describe()
    bf16 = "native bf16" if info["native_bf16"] else "no native bf16"
    return (f"{info['cpu']} ({bf16}), {info['cpus']} cores, torch {info['torch']} "
            f"({info['torch_threads']} threads), Python {info['python']}")


def emit(result: dict, path: Path | None) -> None:
    """Print a benchmark's JSON record, and write it to ``path`` when given."""
    import json

    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
