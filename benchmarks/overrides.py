"""``--set FIELD=VALUE`` for the benchmark scripts: config field overrides from the shell.

A value is read as TOML (``3e-4``, ``true``, ``"BILOU"``, ``[1, 2]``); anything TOML cannot
read is taken as a bare string, so ``--set scheme=BILOU`` needs no shell-escaped quotes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from typing import Any


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE")
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = value
    return overrides
