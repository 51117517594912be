"""Tune -> poll -> extract -> evaluate through the official SDKs against a loopback stub.

The stub implements the endpoints each SDK calls, with response shapes from the providers'
API references (OpenAI files, fine_tuning/jobs, chat/completions; Vertex AI tuningJobs and
generateContent; Cohere v2/chat). It answers chat requests with the gold completion of the
prompt (so the scores are known), and logs every request to check paths, retries and keys.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medner.backends.prompted.prompts import get_template
from medner.cli import main
from medner.document import Document, Span
from medner.labels import get_schema

SCHEMA = get_schema("bc5cdr")
KEYS = {"OPENAI_API_KEY": "sk-stub-openai-SECRET-1", "CO_API_KEY": "co-stub-SECRET-2"}
VERTEX_TOKEN = "ya29.stub-SECRET-3"


def doc(i: int) -> Document:
    text = f"Patient {i} developed hepatitis after isoniazid."
    spans = [Span(text.index(word), text.index(word) + len(word), label, word)
             for word, label in (("hepatitis", "Disease"), ("isoniazid", "Chemical"))]
    return Document(f"d{i}", text, tuple(spans))


DOCS = [doc(i) for i in range(12)]


def gold_answers() -> dict[str, str]:
    """Prompt -> gold completion; d0's answer also names a string not in its text."""
    (task,) = get_template("entities-json").build_tasks(SCHEMA)
    answers = {task.user_message(d.text, SCHEMA): task.completion(d) for d in DOCS}
    first = task.user_message(DOCS[0].text, SCHEMA)
    answers[first] = answers[first][:-2] + ',\n{"text": "cirrhosis", "label": "Disease"}\n]'
    return answers


class Stub:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers = gold_answers()
        self.rate_limit_first = 0
        self.polls = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def chat_paths(self) -> list[str]:
        return [r["path"] for r in self.requests
                if re.search(r"chat|generateContent", r["path"])]

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers), "body": body})
                status, payload, headers = stub.route(self.command, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    # ------------------------------------------------------------------ routes
    def route(self, method: str, path: str, body: bytes):
        path = path.split("?")[0]
        if re.search(r"/chat(/completions)?$|:generateContent$", path):
            if self.rate_limit_first > 0:
                self.rate_limit_first -= 1
                return 429, {"error": {"message": "Rate limit reached", "code": 429,
                                       "status": "RESOURCE_EXHAUSTED"}}, {"retry-after": "0"}
            return 200, self.chat(path, json.loads(body)), {}
        if path == "/v1/files":
            return 200, {"id": "file-train", "object": "file", "bytes": len(body),
                         "created_at": 1, "filename": "train.jsonl", "purpose": "fine-tune",
                         "status": "processed"}, {}
        if path.startswith("/v1/fine_tuning/jobs"):
            return 200, self.openai_job(method), {}
        if "/tuningJobs" in path:
            return 200, self.vertex_job(method), {}
        return 404, {"error": {"message": f"stub has no {method} {path}"}}, {}

    def chat(self, path: str, request: dict) -> dict:
        if ":generateContent" in path:  # Vertex AI / Gemini
            prompt = request["contents"][-1]["parts"][0]["text"]
            answer = self.answers.get(prompt, "[]")
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": answer}]},
                                    "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}
        content = request["messages"][-1]["content"]
        prompt = content if isinstance(content, str) else content[0]["text"]
        answer = self.answers.get(prompt, "[]")
        if path.startswith("/v2/"):  # Cohere v2 chat
            return {"id": "c1", "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text",
                                                                  "text": answer}]},
                    "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 1}}}
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}]}

    def openai_job(self, method: str) -> dict:
        if method == "GET":
            self.polls += 1
        done = self.polls >= 2
        return {"id": "ftjob-stub", "object": "fine_tuning.job", "created_at": 1,
                "model": "gpt-4o-mini-2024-07-18", "organization_id": "org-stub",
                "status": "succeeded" if done else ("running" if self.polls else "queued"),
                "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:stub::abc123" if done else None,
                "training_file": "file-train", "validation_file": None, "result_files": [],
                "hyperparameters": {"n_epochs": 3}, "seed": 1, "error": None,
                "trained_tokens": 3000 if done else None, "finished_at": 2 if done else None}

    def vertex_job(self, method: str) -> dict:
        if method == "GET":
            self.polls += 1
        done = self.polls >= 2
        job = {"name": "projects/stub-project/locations/us-central1/tuningJobs/777",
               "baseModel": "gemini-2.5-flash",
               "state": "JOB_STATE_SUCCEEDED" if done else "JOB_STATE_RUNNING"}
        if done:
            job["tunedModel"] = {
                "model": "projects/stub-project/locations/us-central1/models/55@1",
                "endpoint": "projects/stub-project/locations/us-central1/endpoints/99"}
        return job


@pytest.fixture
def stub(monkeypatch, tmp_path):
    server = Stub()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    monkeypatch.setenv("CO_API_URL", server.url)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", f"{server.url}/")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "stub-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    # Application default credentials with a token valid far in the future: no token refresh.
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "stub",
                               "client_secret": "stub", "refresh_token": "stub",
                               "token": VERTEX_TOKEN, "expiry": "2999-01-01T00:00:00Z"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("MEDNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("medner.backends.hosted.calls.time.sleep", lambda seconds: None)
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in DOCS))
    return path


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def assert_no_secret(*places) -> None:
    """No key or token in any file under ``places`` (folders or files)."""
    secrets = [*KEYS.values(), VERTEX_TOKEN]
    for place in places:
        for path in [place, *place.rglob("*")]:
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), path


def tune_args(provider: str, corpus, out) -> list[str]:
    args = ["hosted", "tune", "--provider", provider, "--train", str(corpus), "--labels",
            "bc5cdr", "--out", str(out), "--poll-interval", "0.01", "--timeout", "30"]
    if provider == "openai":
        return args + ["--base-model", "gpt-4o-mini-2024-07-18"]
    return args + ["--base-model", "gemini-2.5-flash", "--gcs-uri", "gs://bucket/train.jsonl"]


@pytest.mark.parametrize("provider", ["openai", "vertex"])
def test_tune_poll_extract_evaluate(provider, stub, corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(tune_args(provider, corpus, run_dir), capsys)
    assert code == 0, err
    meta = json.loads((run_dir / "medner.json").read_text())
    assert meta["backend"] == "hosted" and meta["job"]["status"] == "succeeded"
    assert meta["data"]["train_examples"] == 12 and meta["data"]["train_approx_tokens"] > 0
    assert len(meta["data"]["train_fingerprint"]) == 16
    if provider == "openai":
        assert meta["job"]["id"] == "ftjob-stub"
        assert meta["model"] == "ft:gpt-4o-mini-2024-07-18:stub::abc123"
        assert meta["data"]["files"]["training_file"] == "file-train"
        upload = next(r for r in stub.requests if r["path"] == "/v1/files")
        assert b"Extract every entity" in upload["body"]  # the exported file itself
    else:
        assert meta["job"]["id"].endswith("/tuningJobs/777")
        assert meta["model"] == "projects/stub-project/locations/us-central1/endpoints/99"
        assert meta["data"]["files"]["training_dataset"] == "gs://bucket/train.jsonl"
        created = next(r for r in stub.requests if r["method"] == "POST"
                       and r["path"].endswith("/tuningJobs"))
        assert created["path"] == "/v1beta1/projects/stub-project/locations/us-central1/tuningJobs"
        assert json.loads(created["body"])["supervisedTuningSpec"]["trainingDatasetUri"] == (
            "gs://bucket/train.jsonl")

    code, out, err = run(["extract", str(run_dir), DOCS[3].text], capsys)
    assert code == 0, err
    assert out.splitlines() == ["Entity: hepatitis, Label: Disease",
                                "Entity: isoniazid, Label: Chemical"]
    if provider == "vertex":
        assert stub.chat_paths()[-1] == ("/v1beta1/projects/stub-project/locations/us-central1/"
                                         "endpoints/99:generateContent")

    report = tmp_path / "report.json"
    code, out, err = run(["evaluate", str(run_dir), "--data", str(corpus), "--bootstrap", "50",
                          "--output", str(report)], capsys)
    assert code == 0, err
    result = json.loads(report.read_text())
    assert result["notes"]["llm_hallucinations"] == 1  # d0's "cirrhosis" is not in the text
    assert result["notes"]["hosted_api_calls"] == 11  # d3 was answered from the cache
    assert result["notes"]["hosted_cached_answers"] == 1
    assert result["entities"]["strict"]["micro"]["f1"] == 1.0  # hallucination dropped
    assert_no_secret(run_dir, tmp_path / "cache", report)
    for request in stub.requests:  # each key only went to its own provider
        sent = json.dumps(request["headers"])
        assert (KEYS["CO_API_KEY"] in sent) is False


def test_reference_extraction_cohere_with_rate_limit_and_cache(stub, corpus, tmp_path, capsys,
                                                                monkeypatch):
    waits = []
    monkeypatch.setattr("medner.backends.hosted.calls.time.sleep", waits.append)
    stub.rate_limit_first = 2
    code, out, err = run(["evaluate", "hosted:cohere:command-a-03-2025", "--data", str(corpus),
                          "--bootstrap", "0", "--output-format", "json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["notes"]["hosted_rate_limit_retries"] == 2
    assert waits == [0.0, 0.0]  # the stub's Retry-After: 0 was honoured
    chats = [r for r in stub.requests if r["path"] == "/v2/chat"]
    assert len(chats) == 12 + 2
    assert chats[0]["headers"]["Authorization"] == f"Bearer {KEYS['CO_API_KEY']}"

    before = len(stub.requests)
    code, out, err = run(["evaluate", "hosted:cohere:command-a-03-2025", "--data", str(corpus),
                          "--bootstrap", "0", "--output-format", "json"], capsys)
    assert code == 0, err
    assert len(stub.requests) == before  # the rerun cost nothing
    assert json.loads(out)["notes"]["hosted_cached_answers"] == 12
    assert_no_secret(tmp_path / "cache")


def test_rate_limit_gives_up_after_bounded_attempts(stub, corpus, capsys):
    stub.rate_limit_first = 100
    code, _, err = run(["extract", "hosted:openai:gpt-4o-mini", DOCS[1].text], capsys)
    assert code == 2
    assert "still rate-limited (HTTP 429) after 6 attempts" in err
    assert len(stub.chat_paths()) == 6


def test_retry_after_header_is_honoured():
    from medner.backends.hosted.calls import RetryPolicy

    class Limited(Exception):
        status_code = 429
        headers = {"Retry-After": "7"}

    waits, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise Limited()
        return "ok"

    policy = RetryPolicy(sleep=waits.append)
    assert policy.call(flaky, "test") == "ok"
    assert waits == [7.0, 7.0] and policy.retries == 2


def test_cohere_tuning_is_refused_with_the_alternative(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CO_API_KEY", raising=False)  # refused before any key is needed
    code, _, err = run(["hosted", "tune", "--provider", "cohere", "--train", str(corpus),
                        "--base-model", "command-r-08-2024", "--out", str(tmp_path / "r")],
                       capsys)
    assert code == 2
    assert "deprecated fine-tuning in September 2025" in err
    assert "hosted:cohere:" in err and "few-shot" in err
    assert not (tmp_path / "r").exists()


def test_invalid_data_is_not_uploaded(stub, tmp_path, capsys):
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in DOCS[:3]))
    code, out, err = run(tune_args("openai", few, tmp_path / "run"), capsys)
    assert code == 2
    assert "nothing was uploaded" in err and "at least 10" in " ".join(out.split())
    assert stub.requests == []


def test_few_shot_reference_sends_examples_as_earlier_turns(stub, corpus, capsys):
    code, out, err = run(["extract", f"hosted:openai:gpt-4o-mini?examples={corpus}&shots=2",
                          DOCS[5].text], capsys)
    assert code == 0, err
    (chat,) = [r for r in stub.requests if r["path"] == "/v1/chat/completions"]
    roles = [m["role"] for m in json.loads(chat["body"])["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert "Entity: hepatitis, Label: Disease" in out


def test_timeout_keeps_the_job_and_the_same_command_resumes_it(stub, corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = tune_args("openai", corpus, run_dir)
    code, _, err = run([*args, "--timeout", "0.001"], capsys)
    assert code == 2 and "Run the same command again to resume" in " ".join(err.split())
    meta = json.loads((run_dir / "medner.json").read_text())
    assert meta["job"] == {**meta["job"], "id": "ftjob-stub", "status": "running"}
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "resuming job ftjob-stub" in out
    created = [r for r in stub.requests if r["method"] == "POST"
               and r["path"] == "/v1/fine_tuning/jobs"]
    assert len(created) == 1  # no second (paid) job
