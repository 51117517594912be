"""Config files and values shared by every trainable backend.

Each backend describes its training config as a frozen dataclass; this module reads the
TOML file (``[train]`` table or top level) and checks each value against the field's type,
so all backends accept and reject the same spellings and name the file and field in errors.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from medner.errors import ConfigError


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) for ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


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
    if base is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


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


__all__ = ["backend_named_in", "coerce_value", "read_config_file", "removed_options_error"]
