"""``medner serve`` in-process: flags, the API key from the environment, the bind warning.

uvicorn.run is replaced by a recorder, so nothing listens on a port here (the real server
runs in test_serve_support.py and test_browser.py).
"""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_serve_support import tiny_model  # noqa: E402

from medner.cli import serve as cli_serve  # noqa: E402


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tiny_model(tmp_path_factory)


@pytest.fixture()
def app():
    app = typer.Typer()
    cli_serve.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keep "serve" a named sub-command
    return app


@pytest.fixture()
def recorded(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.delenv(cli_serve.API_KEY_ENV, raising=False)
    return calls


def test_defaults_bind_loopback_port_8000(app, model_folder, recorded):
    result = CliRunner().invoke(app, ["serve", str(model_folder)])
    assert result.exit_code == 0, result.output
    (served, kwargs), = recorded
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8000
    assert kwargs["workers"] == 1
    assert "medner" in kwargs["log_config"]["loggers"]
    from fastapi.testclient import TestClient

    with TestClient(served) as client:
        assert client.get("/healthz").json()["auth_required"] is False
        assert client.get("/v1/model").json()["limits"] == {"max_chars": 100_000,
                                                           "max_texts": 64}


def test_flags_and_api_key_from_the_environment(app, model_folder, recorded, monkeypatch):
    monkeypatch.setenv(cli_serve.API_KEY_ENV, "env-secret-42")
    result = CliRunner().invoke(app, ["serve", str(model_folder), "--port", "9123",
                                      "--max-chars", "50", "--max-texts", "2"])
    assert result.exit_code == 0, result.output
    assert "env-secret-42" not in result.output
    assert "API key required" in result.output
    (served, kwargs), = recorded
    assert kwargs["port"] == 9123
    from fastapi.testclient import TestClient

    with TestClient(served) as client:
        assert client.get("/v1/model").status_code == 401
        info = client.get("/v1/model", headers={"X-API-Key": "env-secret-42"}).json()
        assert info["limits"] == {"max_chars": 50, "max_texts": 2}


def test_public_bind_without_a_key_warns(app, model_folder, recorded):
    result = CliRunner().invoke(app, ["serve", str(model_folder), "--host", "0.0.0.0"])
    assert result.exit_code == 0
    assert "without an API key" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--log-level", "loud"], "--log-level"),
    (["--max-texts", "0"], "at least 1"),
    (["--port", "70000"], "--port"),
])
def test_bad_flags_are_clear_errors(app, model_folder, recorded, args, message):
    result = CliRunner().invoke(app, ["serve", str(model_folder), *args])
    assert result.exit_code != 0
    assert message in str(result.exception) + result.output
    assert not recorded


def test_blank_key_in_the_environment_is_an_error(app, model_folder, recorded, monkeypatch):
    monkeypatch.setenv(cli_serve.API_KEY_ENV, "   ")
    result = CliRunner().invoke(app, ["serve", str(model_folder)])
    assert result.exit_code != 0
    assert "blank" in str(result.exception)


def test_missing_model_folder_is_a_clear_error(app, tmp_path, recorded):
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "does not exist" in str(result.exception)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True),
                                                ("::1", True), ("0.0.0.0", False),
                                                ("192.168.1.5", False), ("example.org", False)])
def test_loopback_detection(host, loopback):
    assert cli_serve._is_loopback(host) is loopback
