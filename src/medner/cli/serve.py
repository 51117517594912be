"""``medner serve MODEL``: the HTTP API and web page for a trained model, with uvicorn.

The API key comes only from the ``MEDNER_API_KEY`` environment variable, never from a
flag: command lines are visible to every user of the machine (``ps``) and end up in shell
history.
"""

from __future__ import annotations

import copy
import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer

from medner.cli.options import BatchSize, Device, Threads
from medner.errors import MednerError

API_KEY_ENV = "MEDNER_API_KEY"
DEFAULT_MAX_CHARS = 100_000  # keep in step with medner.serve.app (not imported: it needs FastAPI)
DEFAULT_MAX_TEXTS = 64


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def log_config(level: str) -> dict:
    """uvicorn's logging setup with medner's loggers on the same handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["medner"] = {"handlers": ["default"], "level": level.upper(),
                                   "propagate": False}
    return config


def run_server(model_path: Path, *, host: str = "127.0.0.1", port: int = 8000,
               max_chars: int = DEFAULT_MAX_CHARS, max_texts: int = DEFAULT_MAX_TEXTS,
               max_batch_texts: int = 32, max_wait_ms: float = 200.0,
               batch_size: int | None = None,
               threads: int | None = None, device: str | None = None,
               log_level: str = "info") -> None:
    """Load the model and serve it until interrupted (what ``medner serve`` does)."""
    try:
        import uvicorn

        from medner.serve.app import create_app
    except ModuleNotFoundError as exc:
        raise MednerError(f"medner serve needs {exc.name!r}: install the serve extra, "
                          "pip install 'medner[serve]'") from None
    from medner.backends import load

    if not 0 <= port <= 65535:
        raise MednerError(f"--port {port}: must be between 0 and 65535")
    api_key = os.environ.get(API_KEY_ENV) or None
    if api_key is not None and not api_key.strip():
        raise MednerError(f"{API_KEY_ENV} is set but blank; unset it or set a real key")
    if not _is_loopback(host) and api_key is None:
        typer.echo(f"warning: serving on {host} without an API key: anyone who can reach this "
                   f"port can use the model. Set {API_KEY_ENV} to require one.", err=True)
    model = load(model_path, batch_size=batch_size, threads=threads, device=device)
    app = create_app(model, max_chars=max_chars, max_texts=max_texts, api_key=api_key,
                     max_batch_texts=max_batch_texts, max_wait_ms=max_wait_ms)
    labels = ", ".join(getattr(model, "labels", ()))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"medner: serving {model_path} ({labels}) on http://{shown}:{port}/  "
               f"(API key {'required' if api_key else 'not required'}; API docs at /docs)",
               err=True)
    uvicorn.run(app, host=host, port=port, log_config=log_config(log_level),
                log_level=log_level.lower(), workers=1, server_header=False)


def serve_command(
    model: Annotated[Path, typer.Argument(help="A trained model folder (from `medner train`).")],
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind. The default is reachable only from this machine; use "
        "0.0.0.0 to expose it (then set MEDNER_API_KEY).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    max_chars: Annotated[int, typer.Option(
        "--max-chars", help="Largest text accepted, in characters (413 above).")
    ] = DEFAULT_MAX_CHARS,
    max_texts: Annotated[int, typer.Option(
        "--max-texts", help="Most texts in one request (413 above).")] = DEFAULT_MAX_TEXTS,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", help="Most texts that concurrent requests share in one model call.")
    ] = 32,
    max_wait_ms: Annotated[float, typer.Option(
        "--max-wait-ms", help="After a batch, wait up to this long (and at most a tenth of "
        "the batch's model time) for its clients' next requests, so they share the next "
        "batch. An idle server never waits.")] = 200.0,
    batch_size: BatchSize = None,
    threads: Threads = None,
    device: Device = None,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="critical, error, warning, info or debug.")] = "info",
) -> None:
    """Serve MODEL over HTTP: POST /v1/extract, GET /v1/model, GET /healthz, a web page at /.

    Requires an API key on /v1/* when the environment variable MEDNER_API_KEY is set.
    """
    if log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
        raise MednerError(f"--log-level {log_level!r}: choose critical, error, warning, info "
                          "or debug")
    if max_chars < 1 or max_texts < 1 or max_batch < 1:
        raise MednerError("--max-chars, --max-texts and --max-batch must be at least 1")
    if not 0 <= max_wait_ms <= 1000:
        raise MednerError(f"--max-wait-ms {max_wait_ms}: must be between 0 and 1000")
    run_server(model, host=host, port=port, max_chars=max_chars, max_texts=max_texts,
               max_batch_texts=max_batch, max_wait_ms=max_wait_ms, batch_size=batch_size,
               threads=threads, device=device, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def main(argv: list[str] | None = None) -> None:
    """``python -m medner.cli.serve MODEL ...``: the command on its own."""
    import sys

    from rich.console import Console

    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(serve_command)
    try:
        standalone(args=argv)
    except MednerError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
