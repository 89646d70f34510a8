"""Configuration from where people keep it: a dict, a JSON or TOML file, the environment.

A preset is the base (``"preset"`` key, ``RESILIENT_REQUESTS_PRESET``; default
``default``) and the other keys override its fields. Sections are nested dicts
in a dict or file, and ``SECTION__FIELD`` in the environment::

    RESILIENT_REQUESTS_PRESET=fast_microservice
    RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS=4
    RESILIENT_REQUESTS_TIMEOUT__READ=2.5
    RESILIENT_REQUESTS_BASE_URL=http://payments:8080/api

An unknown key or a bad value raises ``ValueError``/``TypeError`` naming the
key (or variable) and the value.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar, Union

from .config import ClientConfig
from .presets import preset

__all__ = ["from_dict", "from_env", "from_file", "overridden", "SECTIONS"]

T = TypeVar("T")

#: ClientConfig fields that hold a section, and the fields each section has.
SECTIONS = {
    f.name: {g.name: g for g in dataclasses.fields(f.default_factory())}
    for f in dataclasses.fields(ClientConfig)
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory())
}
_TOP = {f.name: f for f in dataclasses.fields(ClientConfig) if f.name not in SECTIONS}
#: Names after the prefix that belong to the environment, not to a ClientConfig.
NOT_CONFIG = frozenset({"WORKER_THREADS"})
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _parse(text: str, annotation: str) -> Any:
    """A string from the environment as the field's type (``annotation`` is its
    type as written, e.g. ``Optional[float]``)."""
    optional = annotation.startswith("Optional[")
    kind = annotation[len("Optional["):-1] if optional else annotation
    stripped = text.strip()
    if optional and stripped.lower() in ("", "none", "null"):
        return None
    if kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError("must be true or false")
    if kind == "int":
        return int(stripped)
    if kind == "float":
        return float(stripped)
    if kind.startswith("Dict"):
        return json.loads(stripped)  # e.g. RESILIENT_REQUESTS_DEPENDENCIES='{"https://api": {...}}'
    if kind == "FrozenSet[str]":
        return frozenset(part for part in stripped.replace(" ", "").split(",") if part)
    if kind.startswith("FrozenSet"):
        return frozenset(int(part) for part in stripped.replace(" ", "").split(",") if part)
    return text


def _apply(config: ClientConfig, values: Mapping[str, Any], where: str, strings: bool) -> ClientConfig:
    top: Dict[str, Any] = {}
    for key, value in values.items():
        name = f"{where}{key}"
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise TypeError(f"{name} must be a table of fields, got {value!r}")
            fields = SECTIONS[key]
            changes = {}
            for field_name, field_value in value.items():
                if field_name not in fields:
                    raise ValueError(f"unknown key {name}.{field_name} (valid: {', '.join(fields)})")
                changes[field_name] = _coerce(field_value, fields[field_name], f"{name}.{field_name}", strings)
            top[key] = _section(getattr(config, key), changes, value, name)
        elif key in _TOP:
            top[key] = _coerce(value, _TOP[key], name, strings)
        else:
            raise ValueError(f"unknown key {name} (valid: preset, {', '.join([*_TOP, *SECTIONS])})")
    return _checked(lambda: dataclasses.replace(config, **top), where.rstrip(".") or "config", values)


def _coerce(value: Any, field: "dataclasses.Field[Any]", name: str, strings: bool) -> Any:
    if not (strings and isinstance(value, str)):
        if isinstance(value, list) and str(field.type).startswith("FrozenSet"):
            return frozenset(value)
        return value
    try:
        return _parse(value, str(field.type))
    except ValueError as error:
        raise ValueError(f"{name}={value!r}: {error} ({field.type})") from None


def _section(current: Any, changes: Dict[str, Any], given: Mapping[str, Any], name: str) -> Any:
    """``current`` with ``changes``; an error names the one key that caused it."""
    try:
        return dataclasses.replace(current, **changes)
    except (TypeError, ValueError) as error:
        prefix = f"{type(current).__name__}."
        culprit = next((f for f in changes if str(error).startswith(prefix + f + " ")), None)
        if culprit is None:
            raise type(error)(f"{name}={dict(given)!r}: {error}") from None
        raise type(error)(f"{name}.{culprit}={given[culprit]!r}: {error}") from None


def _checked(build: Callable[[], T], name: str, value: Any) -> T:
    try:
        return build()
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}={value!r}: {error}") from None


def from_dict(data: Mapping[str, Any], *, where: str = "") -> ClientConfig:
    """A config from a nested mapping: ``preset``, top-level fields, and one
    mapping per section (``timeout``, ``retry``, ``circuit_breaker``, ``bulkhead``, ``logging``)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"configuration must be a mapping, got {data!r}")
    values = dict(data)
    base = values.pop("preset", "default")
    config = _checked(lambda: preset(base, values.pop("base_url", None)), f"{where}preset", base)
    return _apply(config, values, where, strings=False)


def overridden(config: ClientConfig, data: Mapping[str, Any], where: str) -> ClientConfig:
    """``config`` (or the preset ``data["preset"]`` names) with the rest of
    ``data`` applied as :func:`from_dict` applies it: one dependency's config."""
    values = dict(data)
    if "preset" in values:
        name = values.pop("preset")
        config = _checked(lambda: preset(name), f"{where}preset", name)
    return _apply(config, values, where, strings=False)


def from_env(prefix: str = "RESILIENT_REQUESTS_", environ: Optional[Mapping[str, Any]] = None,
             default_preset: str = "default") -> ClientConfig:
    """A config from variables named ``PREFIX`` + ``PRESET``, ``FIELD`` or
    ``SECTION__FIELD`` in ``environ`` (default ``os.environ``; Flask's
    ``app.config`` works too). Values may be strings or already typed.
    Without a ``PRESET``, ``default_preset`` is the base."""
    environ = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    names: Dict[str, str] = {}
    for variable, value in environ.items():
        if not isinstance(variable, str) or not variable.startswith(prefix):
            continue
        if variable[len(prefix):] in NOT_CONFIG:
            continue  # read by the web integrations, not a ClientConfig field
        section, _, field = variable[len(prefix):].lower().partition("__")
        if field:
            values.setdefault(section, {})[field] = value
        else:
            values[section] = value
        names[section] = variable
    base = values.pop("preset", default_preset)
    try:
        config = _checked(lambda: preset(base, values.pop("base_url", None)), prefix + "preset", base)
        return _apply(config, values, prefix, strings=True)
    except (TypeError, ValueError) as error:
        raise type(error)(_upper_names(str(error), prefix)) from None


def _upper_names(message: str, prefix: str) -> str:
    """Spell keys in an error as the environment variables they came from."""
    words = []
    for word in message.split(" "):
        if word.startswith(prefix):
            head, sep, tail = word.partition("=")
            head = prefix + head[len(prefix):].replace(".", "__").upper()
            word = head + sep + tail
        words.append(word)
    return " ".join(words)


def from_file(path: Union[str, "os.PathLike[str]"]) -> ClientConfig:
    """A config from a ``.json`` or ``.toml`` file holding the same layout as
    :func:`from_dict` (optionally under a ``resilient_requests`` table)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    elif path.suffix == ".toml":
        try:
            # Which of these ignores is used depends on the Python version mypy
            # targets (tomllib is 3.11+) and on whether tomli is installed.
            import tomllib  # type: ignore[import-not-found, unused-ignore]
        except ImportError:  # Python < 3.11
            try:
                import tomli as tomllib  # type: ignore[no-redef, unused-ignore]
            except ImportError:
                raise RuntimeError(f"reading {path} needs Python 3.11+ or `pip install tomli`") from None
        data = tomllib.loads(text)
    else:
        raise ValueError(f"config file {path} must end in .json or .toml")
    if isinstance(data, dict) and set(data) == {"resilient_requests"}:
        data = data["resilient_requests"]
    return from_dict(data, where=f"{path.name}: ")
