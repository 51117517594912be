"""``medner train``: one command for every trainable backend.

Flags are generated from the backends' config dataclasses, so a TOML config file and the
command line share one definition. Flags override file values. A field both backends have
(``--epochs``, ``--out``, ...) is one flag; a flag the chosen backend does not have is an
error that names the backend it belongs to.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Optional  # noqa: UP035 - typer reads these annotations at runtime

import typer
from rich.markup import escape

from medner.core.config import removed_options_error
from medner.errors import ConfigError
from medner.pipeline import stage_tables, train_stages

# backend name -> package with ``config`` (``field_types``, ``field_help``, ``defaults``,
# ``load_config``) and ``train`` (``train(config, log=, progress=)``) modules
TRAINABLE_BACKENDS = {"encoder": "medner.backends.encoder", "llm": "medner.backends.llm"}
DEFAULT_BACKEND = "encoder"


def _config_module(backend: str):
    return importlib.import_module(f"{TRAINABLE_BACKENDS[backend]}.config")


def _flag_annotation(tp: Any) -> Any:
    """The Optional[...] annotation typer needs for a config field's flag."""
    base = tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(base) is typing.Literal:
        base = str
    if typing.get_origin(base) is tuple:
        return Optional[list[str]]  # noqa: UP045
    return Optional[base]  # noqa: UP045


def _option(name: str, tp: Any, help_text: str) -> typer.models.OptionInfo:
    flag = "--" + name.replace("_", "-")
    if _flag_annotation(tp) is Optional[bool]:  # noqa: UP045
        return typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
    return typer.Option(None, flag, help=help_text, show_default=False)


def backend_fields() -> dict[str, dict[str, tuple[Any, str, Any]]]:
    """For each backend: field name -> (type, help, default)."""
    out = {}
    for backend in TRAINABLE_BACKENDS:
        module = _config_module(backend)
        helps = module.field_help()
        defaults = module.defaults()
        out[backend] = {name: (tp, helps[name], defaults.get(name))
                        for name, tp in module.field_types().items()}
    return out


def _merged_flags() -> dict[str, tuple[Any, str]]:
    """One flag per field name over all backends, with help that says which backend uses it.

    Two backends may share a field name only when the flag types agree; otherwise the
    generated command would silently coerce one backend's value into the other's type.
    """
    uses: dict[str, list[tuple[str, Any, str]]] = {}
    for backend, fields in backend_fields().items():
        for name, (tp, help_text, default) in fields.items():
            if isinstance(default, tuple):
                default = ", ".join(default)
            shown = "" if default in (None, "") else f" [default: {default}]"
            uses.setdefault(name, []).append((backend, tp, help_text + shown))
    out = {}
    for name, entries in uses.items():
        if len({_flag_annotation(tp) for _, tp, _ in entries}) > 1:
            raise TypeError(f"config field {name!r} has different types in the backends; "
                            "rename one of them")
        texts = {text for _, _, text in entries}
        if len(entries) == len(TRAINABLE_BACKENDS) and len(texts) == 1:
            help_text = texts.pop()
        else:
            help_text = " | ".join(f"{backend}: {text}" for backend, _, text in entries)
        # typer renders help as rich markup, which would swallow "[default: ...]"
        out[name] = (entries[0][1], escape(help_text))
    return out


def removed_flags() -> dict[str, tuple[Any, str]]:
    """Options a backend once had -> (type, why they went), over all backends. They stay as
    hidden flags so that using one is an error that says so, not click's "no such option"."""
    out: dict[str, tuple[Any, str]] = {}
    for backend in TRAINABLE_BACKENDS:
        module = _config_module(backend)
        out.update(getattr(module, "removed_fields", dict)())
    return out


def choose_backend(flag: str | None, config_path: Path | None) -> str:
    """--backend, else the config file's ``backend`` key, else the encoder."""
    from medner.core.config import backend_named_in

    backend = flag
    if backend is None and config_path is not None:
        backend = backend_named_in(config_path)
    backend = backend or DEFAULT_BACKEND
    if backend not in TRAINABLE_BACKENDS:
        raise ConfigError(f"backend {backend!r} cannot be trained; choose one of: "
                          f"{', '.join(TRAINABLE_BACKENDS)}")
    return backend


def run_train(backend: str | None, config_path: Path | None, overrides: dict[str, Any]):
    """What the command does, importable: pick the backend, load its config, apply flags,
    train; then the stages the config's ``[link]``, ``[relations]`` and ``[assertion]``
    tables ask for. ``overrides`` holds every flag; ``None`` means not given."""
    backend = choose_backend(backend, config_path)
    removed = {name: why for name, (_, why) in removed_flags().items()
               if overrides.get(name) is not None}
    if removed:
        raise removed_options_error(removed, "command line", flags=True)
    all_fields = backend_fields()
    known = all_fields[backend]
    foreign = sorted(name for name, value in overrides.items()
                     if value is not None and name not in known)
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
        others = sorted({b for b, fields in all_fields.items() for n in foreign
                         if n in fields})
        raise ConfigError(f"{flags}: not an option of the {backend} backend (it belongs to "
                          f"{', '.join(others)}; choose it with --backend or the config "
                          "file's 'backend' key)")
    values = {name: value for name, value in overrides.items() if name in known}
    if values.get("report_to"):
        values["report_to"] = tuple(v for item in values["report_to"]
                                    for v in item.replace(",", " ").split())
    config = _config_module(backend).load_config(config_path, values)
    stages = stage_tables(config_path)  # read before hours of training: fail early
    trainer = importlib.import_module(f"{TRAINABLE_BACKENDS[backend]}.train")
    result = trainer.train(config, log=lambda msg: typer.echo(msg, err=True), progress=True)
    if stages:
        train_stages(result.path, config, stages, config_path=config_path,
                     log=lambda msg: typer.echo(msg, err=True))
    return result


def _build_command():
    flags = _merged_flags()

    def train_command(**kwargs: Any) -> None:
        backend = kwargs.pop("backend")
        config_path = kwargs.pop("config")
        result = run_train(backend, config_path, kwargs)
        metrics = result.meta.get("dev_metrics") or {}
        if "micro" in metrics:
            typer.echo(f"dev strict micro F1: {100 * metrics['micro']['f1']:.2f}")
        typer.echo(str(result.path))

    params = [
        inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Optional[str],  # noqa: UP045
                          default=typer.Option(
                              None, "--backend",
                              help=f"Which backend to train: {', '.join(TRAINABLE_BACKENDS)}. "
                                   "Default: the config file's 'backend' key, else "
                                   f"{DEFAULT_BACKEND}.", show_default=False)),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Optional[Path],  # noqa: UP045
                          default=typer.Option(None, "--config", "-c",
                                               help="TOML config file with the fields below; "
                                                    "flags override it.")),
    ]
    annotations: dict[str, Any] = {"backend": Optional[str],  # noqa: UP045
                                   "config": Optional[Path]}  # noqa: UP045
    for name, (tp, help_text) in flags.items():
        annotation = _flag_annotation(tp)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        annotation=annotation,
                                        default=_option(name, tp, help_text)))
        annotations[name] = annotation
    for name, (tp, _) in removed_flags().items():
        if name in flags:  # still an option of another backend
            continue
        annotation = _flag_annotation(tp)
        option = _option(name, tp, "Removed.")
        option.hidden = True
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        annotation=annotation, default=option))
        annotations[name] = annotation
    train_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    train_command.__annotations__ = {**annotations, "return": None}
    train_command.__doc__ = ("Train a model. Examples: medner train --train demo --out "
                             "models/demo;  medner train -c configs/bc5cdr.toml;  "
                             "medner train --backend llm -c configs/llm-bc5cdr.toml")
    return train_command


def register(app: typer.Typer) -> None:
    app.command("train")(_build_command())
