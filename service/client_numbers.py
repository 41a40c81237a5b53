"""Numbers a client sends as text (query strings, headers, cursors), checked before they reach
SQL, Python's ``int()``/``float()`` or optuna-dashboard.

Python's ``int()`` and ``float()`` accept any Unicode digit ("٣", and ``str.isdigit`` is true of
"²", which ``int()`` refuses), and integers of any length, which SQL cannot bind (SQLite: 64
bits; PostgreSQL INTEGER columns: 32). Here only ASCII decimal text converts, within range.
"""

from __future__ import annotations

import math
import re

MAX_ROW_ID = 2**31 - 1  # ids and trial numbers are INTEGER columns: 32 bits in PostgreSQL
MAX_NUMBER_CHARS = 64
_ROW_ID = re.compile(r"[0-9]{1,10}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def row_id(text: str) -> int | None:
    """A non-negative id of at most ``MAX_ROW_ID`` written in ASCII digits, else None."""
    text = text.strip()
    if not (text.isascii() and _ROW_ID.fullmatch(text)):
        return None
    value = int(text)
    return value if value <= MAX_ROW_ID else None


def looks_numeric(text: str) -> bool:
    """Whether the text is written as a decimal number (ASCII digits, sign, point, exponent)."""
    return text.isascii() and _DECIMAL.fullmatch(text) is not None


def parse_number(text: str) -> int | float | None:
    """The finite number a decimal text means (an int if written as one), else None: not a
    number, non-ASCII digits, longer than ``MAX_NUMBER_CHARS``, or beyond a float's range."""
    if len(text) > MAX_NUMBER_CHARS or not looks_numeric(text):
        return None
    if _INTEGER.fullmatch(text):
        whole = int(text)
        return whole if math.isfinite(float(whole)) else None
    value = float(text)
    return value if math.isfinite(value) else None


def finite_float(value: object) -> float | None:
    """A JSON-decoded number as a finite float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        converted = float(value)
    except OverflowError:  # an integer beyond a float's range
        return None
    return converted if math.isfinite(converted) else None
