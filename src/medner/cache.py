"""medner's cache folder (unpacked base models, hosted-model answers): one root for all."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``MEDNER_CACHE`` if set, else ``~/.cache/medner``."""
    return Path(os.environ.get("MEDNER_CACHE", Path.home() / ".cache" / "medner"))
