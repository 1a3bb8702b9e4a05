"""Constraints as data: the registry of constraint types and the validation of
`{"type": ..., **kwargs}`.

A prompt row carries a list of constraints, each a mapping with a `type` and
that type's keyword arguments, for example
`{"type": "length_constraints:number_words", "num_words": 300, "relation": "at least"}`.
`parse_constraints(raw, row=...)` turns the list into frozen `Constraint`
records once, at load time: an unknown type, a missing or unknown key, or a
value of the wrong kind raises `ConstraintError` naming the row, the position
in the list, the type and the offending key. A key whose value is None counts
as absent (some IFEval exports carry every key with null values).

Every type is registered by its module (`ifeval`, `ifbench`, `creative`,
`guard`, `soft`) with a `ConstraintType`: its keyword arguments (each with a validator
that returns the normalised value), an optional `prepare` step (cross-field
checks, compiled patterns) and the rule that checks a `TextStats`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

RELATIONS = ("less than", "at least")
FAMILIES = ("ifeval", "ifbench", "creative", "guard", "soft")


class ConstraintError(ValueError):
    """A constraint is malformed; the message names the row, the list position, the type and the
    key."""


class KwargError(ValueError):
    """Raised by a validator; the registry adds where the value came from."""


# --------------------------------------------------------------------------- validators


def integer(minimum: int | None = 0, maximum: int | None = None) -> Callable[[Any], int]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise KwargError(f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise KwargError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise KwargError(f"must be <= {maximum}, got {value}")
        return value

    return check


def relation(value) -> str:
    if value not in RELATIONS:
        raise KwargError(f"must be one of {', '.join(map(repr, RELATIONS))}, got {value!r}")
    return value


def text(nonblank: bool = True) -> Callable[[Any], str]:
    def check(value):
        if not isinstance(value, str):
            raise KwargError(f"must be a string, got {value!r}")
        if nonblank and not value.strip():
            raise KwargError("must not be empty")
        return value

    return check


def text_list(nonempty: bool = True) -> Callable[[Any], tuple[str, ...]]:
    def check(value):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise KwargError(f"must be a list of strings, got {value!r}")
        items = tuple(value)
        if nonempty and not items:
            raise KwargError("must hold at least one string")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise KwargError(f"item {i} must be a non-empty string, got {item!r}")
        return items

    return check


def boolean(value) -> bool:
    if not isinstance(value, bool):
        raise KwargError(f"must be true or false, got {value!r}")
    return value


def choice(*options: str) -> Callable[[Any], str]:
    def check(value):
        if value not in options:
            raise KwargError(f"must be one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    return check


def number(minimum: float, maximum: float) -> Callable[[Any], float]:
    def check(value):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not minimum <= value <= maximum
        ):
            raise KwargError(f"must be a number in [{minimum}, {maximum}], got {value!r}")
        return float(value)

    return check


def compile_pattern(pattern: str, flags: int = 0) -> re.Pattern:
    """Compile a pattern built from user text; a bad one is a load-time error."""
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise KwargError(
            f"is not a valid regular expression once inserted in the rule ({exc}): {pattern!r}"
        ) from None


# --------------------------------------------------------------------------- types and records


@dataclass(frozen=True)
class Kwarg:
    """One keyword argument of a constraint type."""

    validate: Callable[[Any], Any]
    required: bool = True
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class ConstraintType:
    """A registered constraint type; `check(stats, args) -> bool` (None for soft constraints)."""

    name: str
    family: str
    kwargs: Mapping[str, Kwarg]
    check: Callable[[Any, Mapping[str, Any]], bool] | None
    prepare: Callable[[dict], dict] | None = None
    description: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family: unknown {self.family!r}")


@dataclass(frozen=True)
class Constraint:
    """A validated constraint: its type, its normalised kwargs, and the prepared arguments its rule
    uses."""

    type: str
    kwargs: Mapping[str, Any]
    args: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def family(self) -> str:
        return constraint_type(self.type).family

    def to_dict(self) -> dict:
        """Back to the data form `{"type": ..., **kwargs}` (lists as lists)."""
        out: dict[str, Any] = {"type": self.type}
        for key, value in self.kwargs.items():
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def __reduce__(
        self,
    ):  # rebuild through validation so prepared state never goes stale across processes
        return (_rebuild, (self.type, dict(self.kwargs)))


def _rebuild(type_name: str, kwargs: dict) -> Constraint:
    return parse_constraint({"type": type_name, **kwargs})


# Filled by the modules that define types (`ifeval`, `ifbench`, `creative`, `guard`, `soft`) when
# they are imported; the package `rlmr.verify` imports all of them, and Python imports a package
# before any of its modules, so every built-in type is registered before this registry is first
# read.
_REGISTRY: dict[str, ConstraintType] = {}


def register(ctype: ConstraintType) -> ConstraintType:
    if ctype.name in _REGISTRY:
        raise ValueError(f"constraint type {ctype.name!r} is registered twice")
    _REGISTRY[ctype.name] = ctype
    return ctype


def define(
    name: str,
    check,
    kwargs: dict[str, Kwarg] | None = None,
    prepare=None,
    description: str = "",
    *,
    family: str,
) -> ConstraintType:
    """Register a constraint type of `family` (the short form the rule modules use)."""
    return register(
        ConstraintType(
            name=name,
            family=family,
            kwargs=kwargs or {},
            check=check,
            prepare=prepare,
            description=description,
        )
    )


def registry() -> Mapping[str, ConstraintType]:
    """Every known constraint type by name."""
    return MappingProxyType(_REGISTRY)


def constraint_type(name: str) -> ConstraintType:
    return _REGISTRY[name]


# --------------------------------------------------------------------------- parsing


def _where(row: int | None, index: int | None, type_name: str | None) -> str:
    parts = []
    if row is not None:
        parts.append(f"row {row}")
    if index is not None:
        parts.append(f"constraints[{index}]" + (f" ({type_name})" if type_name else ""))
    elif type_name:
        parts.append(type_name)
    return ": ".join(parts)


def parse_constraint(
    raw: Mapping[str, Any] | Constraint, *, row: int | None = None, index: int | None = None
) -> Constraint:
    """Validate one `{"type": ..., **kwargs}` mapping; `row`/`index` only shape the error
    message."""
    if isinstance(raw, Constraint):
        return raw
    if not isinstance(raw, Mapping):
        raise ConstraintError(
            f"{_where(row, index, None)}: a constraint must be a mapping with a 'type', got {raw!r}"
        )
    type_name = raw.get("type")
    where = _where(row, index, type_name if isinstance(type_name, str) else None)
    if type_name is None:
        raise ConstraintError(f"{where}: type: required key is missing")
    if not isinstance(type_name, str):
        raise ConstraintError(
            f"{where}: type: must be a string, got {type(type_name).__name__} {type_name!r}"
        )
    kinds = registry()
    if type_name not in kinds:
        raise ConstraintError(
            f"{_where(row, index, None)}: type: unknown constraint type {type_name!r}"
            f"{_suggest(str(type_name), kinds)}"
        )
    ctype = kinds[type_name]
    given = {k: v for k, v in raw.items() if k != "type" and v is not None}
    for key in given:
        if key not in ctype.kwargs:
            allowed = ", ".join(ctype.kwargs) or "none"
            raise ConstraintError(f"{where}: {key}: unknown key (allowed: {allowed})")
    kwargs: dict[str, Any] = {}
    for key, spec in ctype.kwargs.items():
        if key not in given:
            if spec.required:
                raise ConstraintError(f"{where}: {key}: required key is missing")
            kwargs[key] = spec.default
            continue
        try:
            kwargs[key] = spec.validate(given[key])
        except KwargError as exc:
            raise ConstraintError(f"{where}: {key}: {exc}") from None
    try:
        args = ctype.prepare(dict(kwargs)) if ctype.prepare else dict(kwargs)
    except KwargError as exc:  # prepare names the key at the start of its message
        raise ConstraintError(f"{where}: {exc}") from None
    return Constraint(type_name, MappingProxyType(kwargs), MappingProxyType(args))


def parse_constraints(
    raw: Sequence[Mapping[str, Any] | Constraint] | None, *, row: int | None = None
) -> tuple[Constraint, ...]:
    """Validate a row's constraint list (None = no constraints)."""
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        prefix = f"row {row}: " if row is not None else ""
        raise ConstraintError(
            f"{prefix}constraints: must be a list of {{'type': ...}} mappings, "
            f"got {type(raw).__name__}"
        )
    return tuple(parse_constraint(item, row=row, index=i) for i, item in enumerate(raw))


def parse_rows(
    rows: Sequence[Mapping[str, Any]], key: str = "constraints", first_row: int = 1
) -> list[tuple[Constraint, ...]]:
    """Validate the constraint lists of many prompt rows; every bad row is reported in one error.

    Rows are numbered from `first_row` (1 = the first line of a JSONL file).
    """
    parsed, problems = [], []
    for i, row in enumerate(rows):
        try:
            parsed.append(parse_constraints(row.get(key), row=first_row + i))
        except ConstraintError as exc:
            problems.append(str(exc))
    if problems:
        raise ConstraintError(
            f"{len(problems)} row(s) with invalid constraints:\n  " + "\n  ".join(problems)
        )
    return parsed


def _suggest(name: str, kinds: Mapping[str, ConstraintType]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(kinds), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
