"""Shared by the serving, batch and browser tests: a tiny trained model and a real server.

``tiny_model(tmp_path_factory)`` takes the encoder backend's tiny BERT built in code
(``medner.backends.encoder.tiny``: 2 layers, 16 hidden, vocabulary from the texts, no
download), fine-tunes it with the backend's own ``train`` until it reproduces three
documents' spans, and caches the folder for the test process.

``running_server(app)`` runs uvicorn in a thread on a free loopback port, waits for
``/healthz`` to answer (bounded deadline, no fixed sleeps) and stops it on exit.

Other test modules import these; the tests below check them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The documents the tiny model is overfitted on; tests send these texts and expect spans back.
TRAIN_DOCS = [
    {"id": "t1", "text": "she has malaria and fever after chloroquine",
     "spans": [{"start": 8, "end": 15, "label": "DISEASE", "text": "malaria"},
               {"start": 20, "end": 25, "label": "SYMPTOM", "text": "fever"},
               {"start": 32, "end": 43, "label": "DRUG", "text": "chloroquine"}]},
    {"id": "t2", "text": "pain in the chest and cough, treated with amoxicillin",
     "spans": [{"start": 0, "end": 4, "label": "SYMPTOM", "text": "pain"},
               {"start": 12, "end": 17, "label": "BODY_PART", "text": "chest"},
               {"start": 22, "end": 27, "label": "SYMPTOM", "text": "cough"},
               {"start": 42, "end": 53, "label": "DRUG", "text": "amoxicillin"}]},
    {"id": "t3", "text": "the patient with tuberculosis had fever and pain on the hip",
     "spans": [{"start": 17, "end": 29, "label": "DISEASE", "text": "tuberculosis"},
               {"start": 34, "end": 39, "label": "SYMPTOM", "text": "fever"},
               {"start": 44, "end": 48, "label": "SYMPTOM", "text": "pain"},
               {"start": 56, "end": 59, "label": "BODY_PART", "text": "hip"}]},
]
_cache: dict[str, Path] = {}


def build_tiny_model(root: Path) -> Path:
    """Train the tiny model into ``root / "model"`` with the encoder backend; returns it."""
    from medner.backends.encoder.config import EncoderConfig
    from medner.backends.encoder.tiny import save_tiny_base
    from medner.backends.encoder.train import train

    root.mkdir(parents=True, exist_ok=True)
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in TRAIN_DOCS), encoding="utf-8")
    base = save_tiny_base(root / "base", [d["text"] for d in TRAIN_DOCS], hidden=16)
    # eval_steps past max_steps: no mid-run evaluation or checkpoint (they would dominate a
    # 60-step run); the dev metrics in medner.json are still computed once at the end.
    # One thread: on a 16-dim model, two threads on a busy 2-core machine are ~10x slower.
    config = EncoderConfig(train=str(data), dev=str(data), labels="clinical4",
                           base_model=str(base), out=str(root / "model"), max_length=32,
                           stride=4, predict_max_length=32, max_steps=60, eval_steps=10_000,
                           batch_size=8, learning_rate=5e-2, warmup=0.0, patience=0, seed=13,
                           bf16=False, predict_batch_size=8, threads=1)
    return train(config, log=lambda _msg: None, progress=False).path


def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model folder, trained once per test process."""
    if "model" not in _cache:
        _cache["model"] = build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    return _cache["model"]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tiny_model(tmp_path_factory)


def test_tiny_model_reproduces_its_training_spans(model_folder):
    from medner.backends import load

    model = load(model_folder)
    assert model.meta["backend"] == "encoder"
    for raw, doc in zip(TRAIN_DOCS, model.extract([d["text"] for d in TRAIN_DOCS]), strict=True):
        assert [(s.start, s.end, s.label) for s in doc.spans] == \
            [(s["start"], s["end"], s["label"]) for s in raw["spans"]]


@contextmanager
def running_server(app, *, deadline: float = 30.0, log_config: dict | None = None,
                   access_log: bool = True) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port; yields the base URL."""
    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=log_config, access_log=access_log,
                            log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="uvicorn-test")
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + deadline
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not thread.is_alive():
                raise RuntimeError("the test server thread ended before answering /healthz")
            if time.monotonic() > end:
                raise TimeoutError(f"the test server did not answer /healthz within {deadline} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=deadline)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the test server did not stop")


def test_running_server_serves_and_keeps_the_api_key_out_of_its_logs(model_folder, caplog):
    """The real uvicorn stack (access log included) never writes the key."""
    import logging

    import httpx

    from medner.backends import load
    from medner.serve.app import create_app

    secret = "uvicorn-log-secret-123"
    caplog.set_level(logging.DEBUG)
    app = create_app(load(model_folder), api_key=secret)
    with running_server(app) as url:
        ok = httpx.post(f"{url}/v1/extract", json={"text": TRAIN_DOCS[0]["text"]},
                        headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        bad = httpx.post(f"{url}/v1/extract", json={"text": "x"},
                         headers={"X-API-Key": secret[:-1]}, timeout=30)
        missing = httpx.get(f"{url}/v1/model", timeout=30)
    assert (ok.status_code, bad.status_code, missing.status_code) == (200, 401, 401)
    assert [s["label"] for s in ok.json()["documents"][0]["spans"]] == \
        [s["label"] for s in TRAIN_DOCS[0]["spans"]]
    messages = [r.getMessage() for r in caplog.records]
    assert any("POST /v1/extract" in m for m in messages)  # the access log was captured
    assert any("refused" in m for m in messages)
    assert not any(secret in m or secret[:-1] in m for m in messages)
