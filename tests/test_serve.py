"""The HTTP API in-process (TestClient) over a tiny model trained in a fixture."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from test_serve_support import TRAIN_DOCS, tiny_model  # noqa: E402

from medner.serve.app import create_app, parse_texts  # noqa: E402

SECRET = "s3cr3t-Key-7f0e"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from medner.backends import load

    return load(tiny_model(tmp_path_factory))


@pytest.fixture(scope="module")
def client(model):
    app = create_app(model, max_chars=200, max_texts=4)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def expected_spans(raw):
    return [(s["start"], s["end"], s["label"], s["text"]) for s in raw["spans"]]


def test_extract_texts_returns_documents_with_spans_and_relations(client):
    texts = [d["text"] for d in TRAIN_DOCS]
    r = client.post("/v1/extract", json={"texts": texts[:3]})
    assert r.status_code == 200, r.text
    docs = r.json()["documents"]
    assert [d["id"] for d in docs] == ["1", "2", "3"]
    for raw, doc in zip(TRAIN_DOCS, docs, strict=True):
        assert doc["text"] == raw["text"]
        assert doc["relations"] == []
        assert [(s["start"], s["end"], s["label"], s["text"]) for s in doc["spans"]] == \
            expected_spans(raw)
        for s in doc["spans"]:
            assert set(s) >= {"start", "end", "label", "text", "score"}
            assert 0.0 <= s["score"] <= 1.0
            assert doc["text"][s["start"]:s["end"]] == s["text"]


def test_extract_single_text(client):
    r = client.post("/v1/extract", json={"text": TRAIN_DOCS[0]["text"]})
    assert r.status_code == 200
    (doc,) = r.json()["documents"]
    assert [(s["start"], s["end"], s["label"], s["text"]) for s in doc["spans"]] == \
        expected_spans(TRAIN_DOCS[0])


def test_empty_and_whitespace_texts_give_no_spans(client):
    r = client.post("/v1/extract", json={"texts": ["", "   \n"]})
    assert r.status_code == 200
    assert [d["spans"] for d in r.json()["documents"]] == [[], []]


def test_model_endpoint(client, model):
    r = client.get("/v1/model")
    assert r.status_code == 200
    info = r.json()
    assert info["backend"] == "encoder"
    assert info["labels"] == list(model.labels) == ["DISEASE", "SYMPTOM", "DRUG", "BODY_PART"]
    assert info["schema"] == "clinical4"
    assert info["base_model"]["source"] == "folder"
    assert info["metrics"]["micro"]["f1"] == pytest.approx(1.0)
    assert info["limits"] == {"max_chars": 200, "max_texts": 4}
    # No server file system paths (model folder, base model, training data) leak out.
    text = json.dumps(info)
    assert str(model.path) not in text
    assert str(Path(model.path).parent) not in text
    assert "path" not in info["base_model"]


def test_healthz_and_docs(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["auth_required"] is False
    spec = client.get("/openapi.json").json()
    assert {"/v1/extract", "/v1/model", "/healthz"} <= set(spec["paths"])
    body = spec["paths"]["/v1/extract"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"texts", "text"}
    assert client.get("/docs").status_code == 200


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]


def test_a_missing_page_does_not_take_the_api_down(model, tmp_path, monkeypatch):
    from medner.serve import app as serve_app

    monkeypatch.setattr(serve_app, "STATIC", tmp_path / "nothing-here")
    with TestClient(create_app(model), raise_server_exceptions=False) as c:
        r = c.get("/")
        assert r.status_code == 500 and r.json()["error"]["code"] == "page_missing"
        assert c.post("/v1/extract", json={"text": "malaria"}).status_code == 200


def test_the_page_files_are_in_the_package_folder():
    """The page ships inside the package (wheels need serve/static/* in package-data)."""
    from medner.serve.app import STATIC

    assert {"index.html", "app.js", "app.css"} <= {p.name for p in STATIC.iterdir()}


# --- limits and bad input ----------------------------------------------------------------


@pytest.mark.parametrize(("payload", "code", "limit"), [
    ({"texts": ["a"] * 5}, "too_many_texts", "max_texts"),
    ({"texts": ["ok", "x" * 201]}, "text_too_long", "max_chars"),
    ({"text": "x" * 201}, "text_too_long", "max_chars"),
])
def test_limits_answer_413_naming_the_limit(client, payload, code, limit):
    r = client.post("/v1/extract", json=payload)
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == code
    assert error["limit"] == limit
    assert limit in error["message"]


def test_texts_at_the_limits_are_accepted(client):
    r = client.post("/v1/extract", json={"texts": ["x" * 200] * 4})
    assert r.status_code == 200


def test_body_over_the_byte_limit_is_refused_before_parsing(client):
    big = b'{"texts": ["' + b"y" * 20_000 + b'"]}'
    r = client.post("/v1/extract", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["limit"] == "max_body_bytes"


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "invalid_json"),
    (b"", "invalid_json"),
    (b"\xff\xfe\x00garbage", "invalid_json"),
    (b"[" * 5_000, "invalid_json"),  # nested deeper than the parser recurses
    (b'["a", "b"]', "invalid_request"),
    (b'"text"', "invalid_request"),
    (b"{}", "invalid_request"),
    (b'{"texts": []}', "invalid_request"),
    (b'{"texts": "not a list"}', "invalid_request"),
    (b'{"texts": [1, 2]}', "invalid_request"),
    (b'{"texts": ["a"], "text": "b"}', "invalid_request"),
    (b'{"texts": ["a"], "extra": 1}', "invalid_request"),
    (b'{"text": null}', "invalid_request"),
    (b'{"text": "bad \\ud800 surrogate"}', "invalid_text"),
])
def test_malformed_bodies_answer_422(client, body, code):
    r = client.post("/v1/extract", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert client.get("/healthz").status_code == 200


def test_non_json_content_type_is_415(client):
    r = client.post("/v1/extract", content=b'{"text": "a"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


def test_unknown_route_and_method_are_json_errors(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/extract")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_random_bodies_never_crash_the_server(client):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["text", "texts", "x"]) | st.text(max_size=5), inner, max_size=3),
        max_leaves=10)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
    def check(body):
        r = client.post("/v1/extract", content=body,
                        headers={"content-type": "application/json"})
        assert r.status_code in (200, 413, 422), (body, r.status_code, r.text)
        assert "error" in r.json() or "documents" in r.json()

    check()
    assert client.get("/healthz").json()["status"] == "ok"


def test_model_failure_is_a_json_500_and_the_server_lives_on(model):
    class Flaky:
        meta, labels, schema = model.meta, model.labels, model.schema

        def extract(self, texts):
            if any("boom" in t for t in texts):
                raise RuntimeError("model exploded")
            return model.extract(texts)

    with TestClient(create_app(Flaky()), raise_server_exceptions=False) as c:
        r = c.post("/v1/extract", json={"text": "boom"})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"
        assert c.post("/v1/extract", json={"text": "she has malaria"}).status_code == 200


def test_parse_texts_table():
    assert parse_texts(b'{"text": "a"}', max_chars=5, max_texts=2) == ["a"]
    assert parse_texts(b'{"texts": ["a", "bb"]}', max_chars=5, max_texts=2) == ["a", "bb"]


def test_cli_defaults_match_the_app():
    from medner.cli import serve as cli_serve
    from medner.serve import app as serve_app

    assert cli_serve.DEFAULT_MAX_CHARS == serve_app.DEFAULT_MAX_CHARS
    assert cli_serve.DEFAULT_MAX_TEXTS == serve_app.DEFAULT_MAX_TEXTS


# --- API key ---------------------------------------------------------------------------------


@pytest.fixture()
def keyed_client(model):
    with TestClient(create_app(model, api_key=SECRET), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Basic " + SECRET},
    {"X-API-Key": SECRET + "x"},
    {"X-API-Key": "é-not-ascii".encode()},
])
def test_api_key_required(keyed_client, headers):
    for method, path, kwargs in (("post", "/v1/extract", {"json": {"text": "malaria"}}),
                                 ("get", "/v1/model", {})):
        r = getattr(keyed_client, method)(path, headers=headers, **kwargs)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert SECRET not in r.text


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {SECRET}"},
                                     {"X-API-Key": SECRET}])
def test_api_key_accepted(keyed_client, headers):
    assert keyed_client.post("/v1/extract", json={"text": "she has malaria"},
                             headers=headers).status_code == 200
    assert keyed_client.get("/v1/model", headers=headers).status_code == 200


def test_open_endpoints_with_a_key(keyed_client):
    assert keyed_client.get("/healthz").json()["auth_required"] is True
    assert keyed_client.get("/").status_code == 200


def test_api_key_never_logged(model, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(model, api_key=SECRET), raise_server_exceptions=False) as c:
        c.post("/v1/extract", json={"text": "malaria"}, headers={"X-API-Key": SECRET})
        c.post("/v1/extract", json={"text": "malaria"}, headers={"X-API-Key": "wrong"})
        c.post("/v1/extract", json={"text": "malaria"},
               headers={"Authorization": f"Bearer {SECRET}x"})
        c.get("/v1/model", headers={"Authorization": f"Bearer {SECRET}"})
    assert any("refused" in rec.getMessage() for rec in caplog.records)
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)


def test_blank_api_key_is_refused(model):
    with pytest.raises(ValueError):
        create_app(model, api_key="  ")


class _AbsentFirst:
    """A stand-in assertion stage: the API is under test here, not the classifier."""

    def predict(self, documents):
        return [d.with_spans(s.with_attribute("assertion", "absent" if k == 0 else "present")
                             for k, s in enumerate(d.spans)) for d in documents]


def test_the_api_returns_each_span_s_assertion(model):
    from medner.pipeline import Pipeline

    app = create_app(Pipeline(model, assertion=_AbsentFirst()))
    with TestClient(app) as c:
        r = c.post("/v1/extract", json={"text": TRAIN_DOCS[0]["text"]})
    spans = r.json()["documents"][0]["spans"]
    assert [s["attributes"] for s in spans] == [{"assertion": "absent"}] + [
        {"assertion": "present"}] * (len(spans) - 1)
    schema = app.openapi()["components"]["schemas"]["SpanOut"]["properties"]
    assert "assertion" in schema["attributes"]["description"]
