"""Config dataclasses from JSON files and ``--set KEY=VALUE`` overrides, with type checks and did-you-mean.

Both packages keep every setting in one frozen dataclass that validates its ranges in ``__post_init__``; this module
does what comes before that, the same way for both: reading a JSON object, parsing overrides, refusing unknown keys
(with the closest known one suggested) and values of the wrong type (worded as types: "must be an integer").
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fkdapp.bounds import is_int, is_number
from fkdapp.errors import ConfigError
from fkdapp.jsonfile import JSONFileError, parse_json, read_json, short


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_known(keys: Iterable[str], known: Iterable[str], what: str = "config key") -> None:
    """A ConfigError for the first key not in ``known``, with a suggestion."""
    known = list(known)
    for key in keys:
        if key not in known:
            names = ", ".join(sorted(known))
            hint = did_you_mean(key, known) or (f"; known: {names}" if len(names) <= 100 else
                                                f"; {len(known)} known, e.g. {names[:60].rsplit(', ', 1)[0]}, ...")
            raise ConfigError(f"unknown {what} {key!r}{hint}")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["k=20", "mu=0.1"]`` -> ``{"k": 20, "mu": 0.1}``: values parsed as JSON, else kept as strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = parse_json(value, f"--set {key.strip()}", "give a number, true/false or text")
        except JSONFileError as e:
            if "not valid JSON" not in str(e):  # too deep, or an integer of too many digits
                raise ConfigError(str(e)) from None
            out[key.strip()] = value
    return out


def read_json_object(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a one-line ConfigError."""
    try:
        return read_json(path, what, dict)
    except JSONFileError as e:
        raise ConfigError(str(e)) from None


# annotation head -> (check, words)
_TYPES = {
    "int": (is_int, "an integer"),
    "float": (is_number, "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "tuple": (lambda v: isinstance(v, (list, tuple)), "a list"),
    "dict": (lambda v: isinstance(v, dict), "a JSON object"),
}


def type_error(name: str, value: Any, annotation: str) -> str | None:
    """The message for ``value`` not matching a dataclass field's (string) annotation, or None when it matches."""
    options = [a.strip() for a in annotation.split("|")]
    if "None" in options and value is None:
        return None
    words = []
    for head in (o.split("[")[0] for o in options if o != "None"):
        check, word = _TYPES.get(head, (lambda v: True, head))
        if check(value):
            return None
        words.append(word)
    if "None" in options:
        words.append("null")
    return f"config value {name}={short(value)} must be {' or '.join(words)}"


def check_types(cls: type, data: dict[str, Any]) -> None:
    """ConfigError for the first value of ``data`` whose type does not match ``cls``'s field annotation."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for name, value in data.items():
        message = type_error(name, value, annotations[name]) if name in annotations else None
        if message:
            raise ConfigError(message)


def build(cls: type, data: dict[str, Any]) -> Any:
    """``cls(**data)`` after the key and type checks; a missing required field is a one-line ConfigError."""
    check_known(data, [f.name for f in dataclasses.fields(cls)])
    check_types(cls, data)
    try:
        return cls(**data)
    except TypeError as e:
        raise ConfigError(f"incomplete config: {e}") from None


def parse_seeds(text: str) -> list[int]:
    """'8' -> seeds 0..7; '4-7' or '0,2' -> those seeds (sorted, distinct); a bad value is a ConfigError."""
    if text.strip().isdigit():
        n = int(text)
        if n < 1:
            raise ConfigError(f"{text!r}: give at least one seed")
        return list(range(n))
    try:
        return parse_counts(text)
    except ConfigError:
        raise ConfigError(f"{text!r}: seeds are a count N (seeds 0..N-1), a range like 4-7, or a list like 0,2,5") \
            from None


def seeds_arg(text: str) -> list[int]:
    """:func:`parse_seeds` as an argparse type (a bad value: argparse's one-line usage error naming the flag)."""
    try:
        return parse_seeds(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def seeds_text(seeds: Sequence[int]) -> str:
    """Seeds as :func:`parse_seeds` reads them back: "4-7" for a run of consecutive seeds (one seed: "4-4", since a
    bare number is a count), else "0,2,5"."""
    seeds = list(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def parse_counts(text: str) -> list[int]:
    """'0-4' or '0,1,3' or '2' -> sorted distinct counts (each >= 0), e.g. teacher counts; a ConfigError otherwise."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise ConfigError(f"{text!r}: use a number, a range like 0-6, or a list like 0,2,4") from None
    if not out or min(out) < 0:
        raise ConfigError(f"{text!r}: teacher counts must be >= 0")
    return sorted(out)
