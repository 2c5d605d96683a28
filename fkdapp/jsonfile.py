"""The one reader of every JSON file the toolkit is given (configs, run folders, results, records, manifests).

A file is data: it is read with limits (size, nesting depth, digits of an integer), decoded as UTF-8, and its top
level checked against the type the caller expects. Every failure is one line naming the file, what is wrong and
the fix; values quoted in messages are cut to a readable length (:func:`short`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fkdapp.errors import UserError

MAX_BYTES = 512 * 2**20  # the largest results file committed is ~2 MB
MAX_DEPTH = 64  # the toolkit's own files nest at most ~6 levels
MAX_DIGITS = 40  # an integer longer than this is not a seed, a size or a count


class JSONFileError(UserError):
    """A JSON file that cannot be used as given; the message is one line."""


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 20 MB string stays a readable message)."""
    text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _LongInteger(Exception):  # not a ValueError: json.loads must not report it as bad syntax
    pass


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _LongInteger(len(text.lstrip("-")))
    return int(text)


def _depth(data: Any) -> int:
    """The nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def parse_json(text: str, where: str, fix: str) -> Any:
    """``text`` parsed as JSON with the depth and integer limits (``where`` names it in the message)."""
    try:
        data = json.loads(text, parse_int=_int)
    except RecursionError:
        raise JSONFileError(f"{where} nests deeper than {MAX_DEPTH} levels; {fix}") from None
    except _LongInteger as e:
        raise JSONFileError(f"{where} holds an integer of {e.args[0]} digits (at most {MAX_DIGITS}); {fix}") from None
    except ValueError as e:  # JSONDecodeError is a ValueError, as is the integer limit
        raise JSONFileError(f"{where} is not valid JSON ({short(str(e), 80)}); {fix}") from None
    if _depth(data) > MAX_DEPTH:
        raise JSONFileError(f"{where} nests deeper than {MAX_DEPTH} levels; {fix}")
    return data


def read_json(path: str | Path, what: str, expect: type = dict, fix: str = "fix or regenerate it",
              max_bytes: int = MAX_BYTES) -> Any:
    """The JSON value in ``path`` (``what`` names the file for the user: "config file", "results file"), checked:
    present, at most ``max_bytes``, UTF-8, within the limits, its top level an ``expect`` (dict or list)."""
    p = Path(path)
    if p.is_dir():
        raise JSONFileError(f"{what} {p} is a folder, not a file")
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise JSONFileError(f"{what} {p} not found") from None
    except OSError as e:
        raise JSONFileError(f"cannot read {what} {p} ({e.strerror})") from None
    if size > max_bytes:
        raise JSONFileError(f"{what} {p} is {size / 2**20:.0f} MB, more than the {max_bytes / 2**20:.0f} MB such a "
                            f"file can be; {fix}")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise JSONFileError(f"{what} {p} is not UTF-8 text (byte {e.start}); {fix}") from None
    except OSError as e:
        raise JSONFileError(f"cannot read {what} {p} ({e.strerror})") from None
    data = parse_json(text, f"{what} {p}", fix)
    if not isinstance(data, expect):
        want = {dict: "a JSON object", list: "a JSON list"}.get(expect, expect.__name__)
        raise JSONFileError(f"{what} {p} holds {type(data).__name__ if data is not None else 'null'}, not {want}; "
                            f"{fix}")
    return data


__all__ = ["JSONFileError", "MAX_DEPTH", "parse_json", "read_json", "short"]
