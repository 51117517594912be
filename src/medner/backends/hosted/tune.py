"""``medner hosted tune``: export and check the data, upload, start the job, poll, record the run.

The run folder holds the exact tuning files sent (``train.<provider>.jsonl``, ``dev...``) and
``medner.json`` (backend ``hosted``): provider, base and tuned model ids, job id and state,
uploaded file ids, the data fingerprints and the cost-relevant counts (examples, approximate
tokens). ``medner.json`` is written (atomically) as soon as the job exists, so an interrupted
or timed-out run keeps the job id; running the same command again resumes polling that job
instead of paying for a second one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medner.backends.hosted.calls import RetryPolicy
from medner.backends.hosted.formats import Validation, build_examples, to_jsonl, to_record, validate
from medner.backends.hosted.providers import COHERE_TUNING_GONE, TUNABLE, JobStatus, get_provider
from medner.core.folder import folder_header
from medner.document import Document, corpus_fingerprint
from medner.errors import ConfigError, MednerError
from medner.io.base import atomic_write
from medner.labels import LabelSchema, apply_schema, get_schema, infer_schema

MEDNER_JSON = "medner.json"


@dataclass
class TuneRequest:
    provider: str
    train: Path
    base_model: str
    out: Path
    dev: Path | None = None
    template: str = "entities-json"
    labels: str | None = None
    system: str | None = None
    suffix: str | None = None
    epochs: int | None = None
    gcs_uri: str | None = None
    dev_gcs_uri: str | None = None
    poll_interval: float = 30.0
    timeout: float = 6 * 3600.0


@dataclass
class PreparedData:
    schema: LabelSchema
    train_docs: list[Document]
    dev_docs: list[Document] | None
    train_records: list[dict[str, Any]]
    dev_records: list[dict[str, Any]] | None
    train_check: Validation
    dev_check: Validation | None


def check_tunable(provider: str) -> None:
    if provider == "cohere":
        raise MednerError(COHERE_TUNING_GONE)
    if provider not in TUNABLE:
        get_provider(provider)  # raises the message for unknown or retired routes
        raise ConfigError(f"--provider {provider!r} cannot tune; use {' or '.join(TUNABLE)}")


def prepare(request: TuneRequest) -> PreparedData:
    """Read the corpora, build the provider's records and validate them (nothing is sent)."""
    from medner.io import read_corpus

    train_docs = read_corpus(request.train).documents
    schema = get_schema(request.labels) if request.labels else infer_schema(train_docs)
    train_docs, _ = apply_schema(train_docs, schema)
    dev_docs = None
    if request.dev is not None:
        dev_docs, _ = apply_schema(read_corpus(request.dev).documents, schema)

    def records(docs: list[Document]) -> list[dict[str, Any]]:
        return [to_record(e, request.provider, request.system)
                for e in build_examples(docs, schema, request.template)]

    train_records = records(train_docs)
    dev_records = records(dev_docs) if dev_docs is not None else None
    return PreparedData(
        schema, train_docs, dev_docs, train_records, dev_records,
        validate(train_records, request.provider),
        validate(dev_records, request.provider, validation_set=True)
        if dev_records is not None else None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    with atomic_write(folder / MEDNER_JSON) as handle:
        handle.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def _data_meta(request: TuneRequest, data: PreparedData, files: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "train_path": str(request.train), "train_documents": len(data.train_docs),
        "train_fingerprint": corpus_fingerprint(data.train_docs),
        "train_examples": data.train_check.examples,
        "train_approx_tokens": data.train_check.approx_tokens,
        "token_estimate": "characters / 4 per epoch; the provider bills its own count",
        "files": files,
    }
    if data.dev_docs is not None and data.dev_check is not None:
        out.update({"dev_path": str(request.dev), "dev_documents": len(data.dev_docs),
                    "dev_fingerprint": corpus_fingerprint(data.dev_docs),
                    "dev_examples": data.dev_check.examples,
                    "dev_approx_tokens": data.dev_check.approx_tokens})
    return out


def _resumable(folder: Path, request: TuneRequest, fingerprint: str) -> dict[str, Any] | None:
    """The recorded run to keep polling: same provider, base model and data, job not done."""
    try:
        meta = json.loads((folder / MEDNER_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (meta.get("backend") == "hosted" and meta.get("provider") == request.provider
            and meta.get("base_model") == request.base_model
            and meta.get("data", {}).get("train_fingerprint") == fingerprint)
    return meta if same and meta.get("job", {}).get("status") == "running" else None


def run_tune(request: TuneRequest, *, data: PreparedData | None = None,
             show: Callable[[JobStatus, float], None] = lambda status, elapsed: None,
             log: Callable[[str], None] = print,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Start (or resume) the job, poll until it ends or ``timeout``; returns ``medner.json``."""
    check_tunable(request.provider)
    data = data or prepare(request)
    if not data.train_check.ok or (data.dev_check is not None and not data.dev_check.ok):
        raise MednerError("the tuning data has errors (listed above); nothing was uploaded")
    folder = request.out
    folder.mkdir(parents=True, exist_ok=True)
    provider = get_provider(request.provider)
    retry = RetryPolicy()
    fingerprint = corpus_fingerprint(data.train_docs)
    meta = _resumable(folder, request, fingerprint)
    if meta is not None:
        log(f"resuming job {meta['job']['id']} recorded in {folder / MEDNER_JSON}")
    else:
        meta = retry.call(lambda: _start(request, data, folder, provider),
                          f"{request.provider} tuning job")
    started = time.monotonic()
    while True:
        status = retry.call(lambda: provider.status(meta["job"]["id"]),
                            f"{request.provider} job status")
        elapsed = time.monotonic() - started
        show(status, elapsed)
        meta["job"]["state"] = status.state
        if status.done:
            break
        if elapsed + request.poll_interval > request.timeout:
            write_meta(folder, meta)
            raise MednerError(f"job {meta['job']['id']} is still {status.state} after "
                              f"{elapsed:.0f} s (--timeout {request.timeout:g}); it keeps running "
                              "at the provider. Run the same command again to resume polling.")
        sleep(request.poll_interval)
    meta["job"].update({"status": "succeeded" if status.succeeded else "failed",
                        "finished": _now(), "message": status.message,
                        "trained_tokens": status.trained_tokens})
    meta["model"] = status.tuned_model if status.succeeded else None
    write_meta(folder, meta)
    if not status.succeeded or not status.tuned_model:
        raise MednerError(f"job {meta['job']['id']} ended {status.state}"
                          + (f": {status.message}" if status.message else "")
                          + f" (recorded in {folder / MEDNER_JSON})")
    return meta


def _start(request: TuneRequest, data: PreparedData, folder: Path, provider) -> dict[str, Any]:
    """Write the tuning files, start the job and record it before polling."""
    train_file = folder / f"train.{request.provider}.jsonl"
    _write(train_file, to_jsonl(data.train_records))
    dev_file = None
    if data.dev_records is not None:
        dev_file = folder / f"dev.{request.provider}.jsonl"
        _write(dev_file, to_jsonl(data.dev_records))
    job_id, uploaded = provider.start(
        base_model=request.base_model, train=train_file, dev=dev_file, suffix=request.suffix,
        gcs_uri=request.gcs_uri, dev_gcs_uri=request.dev_gcs_uri, epochs=request.epochs)
    files = {"train_file": train_file.name,
             "train_sha256": hashlib.sha256(train_file.read_bytes()).hexdigest(), **uploaded}
    if dev_file is not None:
        files["dev_file"] = dev_file.name
    meta = {
        **folder_header("hosted", folder), "provider": request.provider,
        "base_model": request.base_model, "model": None, "template": request.template,
        "schema": data.schema.to_dict(), "system": request.system,
        "job": {"id": job_id, "state": "created", "status": "running", "started": _now()},
        "data": _data_meta(request, data, files),
    }
    write_meta(folder, meta)
    return meta


def _write(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


__all__ = ["PreparedData", "TuneRequest", "check_tunable", "prepare", "run_tune", "write_meta"]
