"""The ``medner`` command: thin sub-commands over importable functions.

Errors a user can act on (``MednerError``) are printed as one line without a traceback,
exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from medner.errors import MednerError

app = typer.Typer(
    name="medner",
    help="Fine-tune, evaluate and serve medical entity and relation extraction models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines ``register(app)`` and imports heavy libraries (torch, transformers)
# only inside its commands, so `medner --help` and the data commands start fast.
COMMAND_MODULES = ("data", "evaluate", "train", "extract", "serve", "pretrain", "export_onnx",
                   "ensemble", "hosted", "kb", "assertion")
for _name in COMMAND_MODULES:
    importlib.import_module(f"medner.cli.{_name}").register(app)

err_console = Console(stderr=True)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv)
    except MednerError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
