"""Loading a run config: YAML file, dotted `--set` overrides, errors that name the file and the key.

`load_config(path, overrides)` reads, overrides and validates; every problem is
reported as `FILE: dotted.key: message` (or `--set key: message` for an
overridden key) in one `ConfigError`. `save_resolved` writes the exact config a
run used next to its outputs, with every default filled in.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rlmr.config.schema import RLMRConfig


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and dotted key."""


def _dotted(loc: tuple, raw: Any) -> str:
    """Turn a pydantic error location into the dotted key the user wrote.

    Locations of discriminated unions carry the tag (`rollout.engine.hf.batch_size`);
    walking the raw data drops the tag (it equals the mapping's own `type`).
    """
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(node, dict) and item in node:
            parts.append(str(item))
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            parts.append(str(item))
            node = node[item]
        elif isinstance(node, dict) and item == node.get("type"):
            continue  # union tag
        else:
            parts.append(str(item))  # a missing or unknown key: still what the user must fix
            node = None
    return ".".join(parts)


_KEYED_MESSAGE = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.S)


def format_validation_error(
    err: ValidationError, raw: Any, source: str, override_keys=frozenset()
) -> str:
    """One line per problem: `SOURCE: dotted.key: message` (SOURCE is `--set` for overridden
    keys)."""
    lines = []
    for e in err.errors():
        key = _dotted(tuple(e["loc"]), raw)
        msg = e["msg"]
        if e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
            m = _KEYED_MESSAGE.match(msg)
            if m:  # a cross-field validator names the key relative to its section
                key = f"{key}.{m.group(1)}" if key else m.group(1)
                msg = m.group(2)
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif "input" in e and not isinstance(e["input"], dict):
            msg = f"{msg} (got {e['input']!r})"
        touched = [
            k
            for k in override_keys
            if k == key or key.startswith(k + ".") or k.startswith(key + ".")
        ]
        where = f"--set {touched[0]}" if touched else source
        lines.append(f"{where}: {key or '<top level>'}: {msg}")
    return "invalid config:\n  " + "\n  ".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b.c=value` -> (`a.b.c`, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. algo.clip.high=0.28")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key segment")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value is not valid YAML: {exc}") from None
    return key, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> tuple[dict, set[str]]:
    """Apply dotted overrides to a plain mapping; returns the new mapping and the keys set."""
    out = copy.deepcopy(raw)
    keys = set()
    for text in overrides:
        key, value = parse_override(text)
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(
                    f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section"
                )
            node = nxt
        node[parts[-1]] = value
        keys.add(key)
    return out, keys


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def validate_config(
    raw: dict, source: str = "<dict>", override_keys: set[str] = frozenset()
) -> RLMRConfig:
    try:
        return RLMRConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, raw, source, set(override_keys))) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RLMRConfig:
    """Read, override and validate a YAML config; raises `ConfigError` naming file and key."""
    raw = read_yaml(path)
    raw, keys = apply_overrides(raw, list(overrides or []))
    return validate_config(raw, str(path), keys)


def to_dict(cfg: RLMRConfig) -> dict:
    return cfg.model_dump(mode="json")


def save_resolved(cfg: RLMRConfig, path: str | Path) -> Path:
    """Write the fully resolved config (defaults filled in) as YAML; it reloads to an equal
    config."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(p)
    return p
