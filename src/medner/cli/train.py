"""``medner train``: flags generated from the backend's config dataclass, so a TOML config
file and the command line share one definition. Flags override file values."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Optional  # noqa: UP035 - typer reads these annotations at runtime

import typer

from medner.backends.encoder.config import EncoderConfig, field_help, field_types, load_config

BACKEND_CHOICES = ("encoder",)


def _flag_annotation(tp: Any) -> Any:
    """The Optional[...] annotation typer needs for a config field's flag."""
    base = tp
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        base = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(base) is typing.Literal:
        base = str
    if typing.get_origin(base) is tuple:
        return Optional[list[str]]  # noqa: UP045
    return Optional[base]  # noqa: UP045


def _option(name: str, tp: Any, help_text: str) -> typer.models.OptionInfo:
    flag = "--" + name.replace("_", "-")
    base = _flag_annotation(tp)
    if base is Optional[bool]:  # noqa: UP045
        return typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
    return typer.Option(None, flag, help=help_text, show_default=False)


def run_train(backend: str, config_path: Path | None, overrides: dict[str, Any]):
    """What the command does, importable: load the config, apply flags, train."""
    from medner.errors import ConfigError

    if backend not in BACKEND_CHOICES:
        raise ConfigError(f"--backend {backend!r} cannot be trained yet; choose one of: "
                          f"{', '.join(BACKEND_CHOICES)}")
    if overrides.get("report_to"):
        overrides["report_to"] = tuple(v for item in overrides["report_to"]
                                       for v in item.replace(",", " ").split())
    config = load_config(config_path, overrides)
    from medner.backends.encoder.train import train

    return train(config, log=lambda msg: typer.echo(msg, err=True), progress=True)


def _build_command():
    hints = field_types()
    helps = field_help()
    defaults = {f: getattr(EncoderConfig(), f) for f in hints}

    def train_command(**kwargs: Any) -> None:
        backend = kwargs.pop("backend")
        config_path = kwargs.pop("config")
        result = run_train(backend, config_path, kwargs)
        metrics = result.meta.get("dev_metrics")
        if metrics:
            typer.echo(f"dev strict micro F1: {100 * metrics['micro']['f1']:.2f}")
        typer.echo(str(result.path))

    params = [
        inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("encoder", "--backend",
                                               help="Which backend to train (encoder).")),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Optional[Path],  # noqa: UP045
                          default=typer.Option(None, "--config", "-c",
                                               help="TOML config file with the fields below; "
                                                    "flags override it.")),
    ]
    annotations: dict[str, Any] = {"backend": str, "config": Optional[Path]}  # noqa: UP045
    for name, tp in hints.items():
        default = defaults[name]
        shown = "" if default in (None, ()) else f" [default: {default}]"
        ann = _flag_annotation(tp)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                                        default=_option(name, tp, helps[name] + shown)))
        annotations[name] = ann
    train_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    train_command.__annotations__ = {**annotations, "return": None}
    train_command.__doc__ = ("Train a model. Example: medner train --train demo --out "
                             "models/demo  (or: medner train -c configs/bc5cdr.toml)")
    return train_command


def register(app: typer.Typer) -> None:
    app.command("train")(_build_command())
