"""Hosted fine-tuning and extraction through provider APIs (OpenAI, Gemini on Vertex AI, Cohere).

formats.py    tuning files per provider from the shared prompt templates; validation
providers.py  one adapter per official SDK: chat, upload, start and poll tuning jobs
calls.py      backoff on rate limits (HTTP 429, Retry-After) and the local answer cache
tune.py       ``medner hosted tune``: prepare, upload, start, poll, write the run folder
model.py      ``HostedModel`` (backend ``hosted``): run folders and ``hosted:PROVIDER:MODEL``

Prompts and the reading of answers are shared with the LLM backend (``medner.backends.prompted``).

What changed at the providers: Google AI Studio tuning of Gemini ended in 2025 (Gemini is tuned
on Vertex AI, which reads the data from Cloud Storage); Cohere deprecated fine-tuning in
September 2025 (its models remain usable for prompted extraction). The SDKs are the optional
extra ``medner[hosted]`` and are imported only when a provider is used.
"""

from __future__ import annotations

from pathlib import Path


def load(path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
         threads: int | None = None):
    """A run folder of ``medner hosted tune`` or a ``hosted:PROVIDER:MODEL`` reference."""
    from medner.backends.hosted.model import load as load_model

    return load_model(path, bf16=bf16, batch_size=batch_size, threads=threads)


__all__ = ["load"]
