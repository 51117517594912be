"""Calling a provider: exponential backoff on rate limits, and a local cache of answers.

The cache maps a hash of (provider, model, messages, generation settings) to the answer,
one small JSON file each under ``<cache root>/hosted`` (``MEDNER_CACHE``, default
``~/.cache/medner``), so rerunning an extraction or an evaluation costs nothing. Only
answers are stored: no key, no header, no prompt.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from medner.cache import cache_root
from medner.errors import MednerError
from medner.io.base import atomic_write

T = TypeVar("T")
RATE_LIMITED = 429


def cache_dir() -> Path:
    return cache_root() / "hosted"


class ResponseCache:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or cache_dir()

    @staticmethod
    def key(provider: str, model: str, messages: list[dict[str, str]],
            settings: dict[str, Any]) -> str:
        blob = json.dumps([provider, model, messages, settings], sort_keys=True,
                          ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or torn entry: ask the provider again

    def put(self, key: str, answer: str) -> None:
        with atomic_write(self._path(key)) as handle:
            json.dump({"answer": answer}, handle, ensure_ascii=False)


# ---------------------------------------------------------------------------- rate limits


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an SDK error (openai and cohere say ``status_code``, google-genai
    ``code``)."""
    for name in ("status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``retry-after-ms``, ``Retry-After`` in seconds or
    as an HTTP date), if it said."""
    headers = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        if "retry-after" in lowered:
            return max(0.0, float(lowered["retry-after"]))
    except ValueError:
        when = email.utils.parsedate_to_datetime(lowered["retry-after"])
        return max(0.0, when.timestamp() - time.time()) if when else None
    return None


class RetryPolicy:
    """Bounded attempts; waits ``base * 2**n`` (with jitter, at most ``max_delay``) unless the
    provider names a wait."""

    def __init__(self, attempts: int = 6, base_delay: float = 1.0, max_delay: float = 60.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep or time.sleep
        self.retries = 0

    def delay(self, attempt: int, exc: BaseException) -> float:
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, self.max_delay)
        return min(self.max_delay, self.base_delay * 2**attempt * (1 + random.random() / 4))

    def call(self, fn: Callable[[], T], what: str) -> T:
        failures = 0
        while True:
            try:
                return fn()
            except MednerError:
                raise
            except Exception as exc:
                if status_code(exc) != RATE_LIMITED:
                    # SDK errors (auth, unknown model, connection) as one actionable line.
                    raise MednerError(f"{what}: {type(exc).__name__}: {exc}") from None
                failures += 1
                if failures >= self.attempts:
                    raise MednerError(f"{what}: still rate-limited (HTTP 429) after "
                                      f"{self.attempts} attempts; wait and rerun (answers "
                                      "received so far are cached)") from None
                self.retries += 1
                self.sleep(self.delay(failures - 1, exc))


__all__ = ["ResponseCache", "RetryPolicy", "cache_dir", "retry_after", "status_code"]
