"""Training configs shared by every trainable backend.

Each backend describes its training config as a frozen dataclass deriving from
``TrainingConfig``, which holds the fields every backend shares and all the behaviour; the
backend adds its own fields (each with its help text in ``metadata["help"]``). ``medner
train`` builds its flags from the fields, so a config file and the command line can never
drift apart; precedence is dataclass default < config file < command-line flag. This module
reads the TOML file (``[train]`` table or top level) and checks each value against the
field's type, so all backends accept and reject the same spellings and name the file and
field in errors.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from medner.abbreviations import DEFAULT_ABBREVIATIONS
from medner.errors import ConfigError


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) for ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


_SCALARS: dict[Any, Any] = {bool: bool, int: int, float: int | float, str: str}
"""A scalar field's type -> the value types a file or a flag may give for it."""


def coerce_value(name: str, value: Any, tp: Any, where: str) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: field {name!r} cannot be empty")
    bad = ConfigError(f"{where}: field {name!r} expects {getattr(base, '__name__', base)}, "
                      f"got {value!r}")
    origin = typing.get_origin(base)
    if origin is Literal:
        if value not in typing.get_args(base):
            raise ConfigError(f"{where}: field {name!r} must be one of "
                              f"{list(typing.get_args(base))}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad
        return tuple(value)
    accepted = _SCALARS.get(base)
    # bool is an int in Python, but never a number in a config
    if accepted is None or not isinstance(value, accepted) or (
            base is not bool and isinstance(value, bool)):
        raise bad
    return float(value) if base is float else value


def removed_options_error(removed: dict[str, str], where: str, *, flags: bool = False
                          ) -> ConfigError:
    """The error for setting options a backend no longer has: ``removed`` maps each option
    set to why it went (options removed for one reason share it); ``flags``: name them as
    command-line flags."""
    by_reason: dict[str, list[str]] = {}
    for name, why in removed.items():
        shown = "--" + name.replace("_", "-") if flags else repr(name)
        by_reason.setdefault(why, []).append(shown)
    parts = [f"{' and '.join(names)} {'was' if len(names) == 1 else 'were'} removed: {why}"
             for why, names in by_reason.items()]
    return ConfigError(f"{where}: {'; '.join(parts)}")


def read_config_file(path: str | Path, backend: str) -> dict[str, Any]:
    """The fields of a TOML config for ``backend`` (``[train]`` table or top level).

    Relative data paths are resolved against the file's folder, so a config works from
    any working directory. Shared by every trainable backend.
    """
    p = Path(path)
    data = _train_table(p)
    named = data.pop("backend", backend)
    if named != backend:
        raise ConfigError(f"{p}: field 'backend' is {named!r}; this config is for the "
                          f"{backend} backend")
    for key in ("train", "dev", "labels", "base_model"):
        value = data.get(key)
        if isinstance(value, str) and _is_relative_path(value):
            candidate = (p.parent / value).resolve()
            if candidate.exists():
                data[key] = str(candidate)
    return data


def backend_named_in(path: str | Path) -> str | None:
    """The ``backend`` key of a TOML config file, if it has one."""
    named = _train_table(Path(path)).get("backend")
    return None if named is None else str(named)


def _train_table(p: Path) -> dict[str, Any]:
    """The ``[train]`` table of a TOML config (or its top level), errors naming the file."""
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config: {exc}") from None
    return dict(raw.get("train", raw))


def _is_relative_path(value: str) -> bool:
    return ("/" in value or "." in value) and not Path(value).is_absolute()




def config_field(default: Any, help: str, **metadata: Any) -> Any:
    """A config field with its help text (the flag's --help and the docs)."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class TrainingConfig:
    """What every backend's frozen config dataclass has and does alike: the data and run
    fields below come first, each backend's own fields follow."""

    BACKEND: ClassVar[str]
    REMOVED: ClassVar[dict[str, tuple[type, str]]] = {}
    """Options this backend once had -> (their type, why they went): setting one is an
    error that says so."""

    # --- data -----------------------------------------------------------------
    train: str = config_field(
        "demo", "Training corpus: a file in any medner format (PubTator, brat, JSONL, the "
        "tutorials' prompt/completion JSONL, ...), or 'demo' for the sample clinical corpus "
        "shipped with medner.")
    dev: str | None = config_field(
        None, "Dev corpus: selects the best checkpoint (and stops early where the backend "
        "does). Without it, --split-seed carves a dev set out of --train.")
    labels: str | None = config_field(
        None, "Label schema: a built-in name (bc5cdr, ncbi-disease, clinical4) or a TOML/JSON "
        "schema file. Default: the labels found in the training data.")
    format: str | None = config_field(
        None, "Corpus format of --train/--dev (pubtator, brat, jsonl, ...). Default: guessed "
        "from the file.")
    split_seed: int | None = config_field(
        None, "Split --train by document 80/10/10 with this seed and train on the 80%, select "
        "on the 10% dev part (for corpora with no official split, e.g. MACCROBAT). Ignored "
        "when --dev is given.")
    on_mismatch: Literal["error", "skip"] = config_field(
        "error", "A mention whose offsets do not reproduce its text: stop (error) or skip it.")
    # --- the run --------------------------------------------------------------
    max_steps: int | None = config_field(
        None, "Stop after this many optimiser steps (overrides --epochs).")
    eval_steps: int | None = config_field(
        None, "Evaluate on dev and checkpoint every N steps (default: once per epoch).")
    seed: int = config_field(
        13, "Random seed for initialisation, data order, splitting and dev samples.")
    bf16: bool | None = config_field(
        None, "bf16 autocast. Default: MEDNER_PRECISION (auto, fp32, bf16), else on when the "
        "CPU supports bf16.")
    threads: int | None = config_field(None, "Torch CPU threads (default: all cores).")
    report_to: tuple[str, ...] = config_field(
        (), "Experiment trackers (tensorboard, wandb, mlflow).")
    resume: bool = config_field(
        False, "Continue an interrupted run from its last checkpoint in <out>.train/.")
    # --- prediction -----------------------------------------------------------
    abbreviations: bool = config_field(
        DEFAULT_ABBREVIATIONS, "After predicting, tag every use of an abbreviation whose long "
        "form was tagged: 'puromycin aminonucleoside (PAN)' labels each later 'PAN' (Schwartz "
        "& Hearst definitions).")

    def check(self, checks: Sequence[tuple[bool, str, str]]) -> None:
        """Raise for the first (ok, field, problem) that is not ok, naming the field."""
        for ok, name, problem in checks:
            if not ok:
                raise ConfigError(f"config field {name!r} {problem} (got {getattr(self, name)!r})")

    def to_dict(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in asdict(self).items()}

    def override(self, values: dict[str, Any]) -> Self:
        """A copy with the non-``None`` values applied (flags not given stay ``None``)."""
        return self.coerce({**self.to_dict(), **{k: v for k, v in values.items()
                                                  if v is not None}}, where="command line")

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in fields(cls)}

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def coerce(cls, data: dict[str, Any], where: str) -> Self:
        """A config from raw values (a file's or the flags'), every error naming ``where``."""
        removed = {name: why for name, (_, why) in cls.REMOVED.items() if name in data}
        if removed:
            raise removed_options_error(removed, where)
        hints = cls.field_types()
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise ConfigError(f"{where}: unknown config field(s) {unknown} for the "
                              f"{cls.BACKEND} backend; known fields: {', '.join(hints)}")
        values = {name: coerce_value(name, value, hints[name], where)
                  for name, value in data.items()}
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None
             ) -> Self:
        """Defaults, then the TOML file (``[train]`` table or top level), then ``overrides``.

        Relative data paths in the file are resolved against the file's folder, so a config
        works from any working directory.
        """
        config = cls()
        if path is not None:
            data = read_config_file(path, cls.BACKEND)
            config = cls.coerce({**config.to_dict(), **data}, where=str(path))
        if overrides:
            config = config.override(overrides)
        return config


class StageConfig:
    """``to_dict``/``from_dict`` of a stage's frozen settings dataclass (the relation model,
    the assertion classifier), as its folder's ``medner.json`` keeps them; ``what`` names it
    in errors."""

    what: ClassVar[str] = "config"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.what}: unknown field(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(known))}")
        return cls(**data)


__all__ = ["StageConfig", "TrainingConfig", "backend_named_in", "coerce_value", "config_field",
           "read_config_file", "removed_options_error"]
