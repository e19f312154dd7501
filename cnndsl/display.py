"""How cnndsl writes numbers and names, total over every value it can meet.

Sizes are Python integers of any size (a 10^400 x 10^400 input is analysed, never allocated),
so nothing here goes through ``float`` or relies on ``str(int)`` below Python's limit on
digits (``sys.get_int_max_str_digits()``, 4,300 by default).  Names can hold characters that
are not UTF-8 (a file named with undecodable bytes arrives as lone surrogates): in JSON they
are written as Python's ``backslashreplace`` writes them, as error messages show them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["int_text", "grouped", "human", "printable", "json_safe", "items_text", "SHOWN_ITEMS"]

_SMALL_BITS = 2000  # ints below 2**2000 (603 digits) convert under any digit limit (>= 640)


def int_text(n: int) -> str:
    """The exact decimal digits of ``n``, however many there are."""
    if n < 0:
        return "-" + int_text(-n)
    if n.bit_length() <= _SMALL_BITS:
        return str(n)
    half = int(n.bit_length() * 0.30103) // 2  # about half of the digits
    high, low = divmod(n, 10**half)
    return int_text(high) + int_text(low).rjust(half, "0")


SHOWN_ITEMS = 256
"""The most list and tuple items one value shows, counted at every depth (in a message, a
call's signature, a diagram's label): the rest are counted, never written."""


def items_text(items: list | tuple, each, budget: list[int] | None = None) -> str:
    """The items of a list or tuple, each written by ``each(item, budget)``, within the
    budget of items left (shared by the nested lists of one value; :data:`SHOWN_ITEMS` at
    first), the rest counted: ``0, 0, ... 59,744 more``."""
    if budget is None:
        budget = [SHOWN_ITEMS]
    parts = []
    for i, item in enumerate(items):
        if budget[0] <= 0:
            parts.append(f"... {grouped(len(items) - i)} more")
            break
        budget[0] -= 1
        parts.append(each(item, budget))
    return ", ".join(parts)


def grouped(n: int) -> str:
    """``n`` with thousands separators: ``138,357,544``."""
    if n.bit_length() <= _SMALL_BITS:
        return f"{n:,}"
    digits = int_text(abs(n))
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return ("-" if n < 0 else "") + ",".join(parts)


_PREFIXES = ("", "K", "M", "G", "T", "P", "E", "Z", "Y", "R", "Q")


def human(n: int, unit: str = "") -> str:
    """``n`` with a decimal prefix (K = 10^3, M = 10^6 ... Q = 10^30) and two decimals:
    ``553.43 MB`` for bytes (``unit="B"``), ``15.47G`` for counts; beyond 10^33, in scientific
    notation (``1.00e400 B``)."""
    sign, n = ("-", -n) if n < 0 else ("", n)
    space = " " if unit else ""
    if n < 1000:
        return f"{sign}{n}{space}{unit}"
    for i, prefix in enumerate(_PREFIXES[1:], 1):
        hundredths = _hundredths(n, 1000**i)
        if hundredths < 100_000:  # below 1000.00 once rounded
            return f"{sign}{hundredths // 100}.{hundredths % 100:02d}{space}{prefix}{unit}"
    exponent = len(int_text(n)) - 1
    hundredths = _hundredths(n, 10**exponent)
    if hundredths >= 1000:  # 9.995e9 rounds to 10.00e9
        exponent += 1
        hundredths = _hundredths(n, 10**exponent)
    return f"{sign}{hundredths // 100}.{hundredths % 100:02d}e{exponent}{space}{unit}"


def _hundredths(n: int, scale: int) -> int:
    """n / scale in hundredths, rounded half to even (exactly, in integers)."""
    q, r = divmod(n * 100, scale)
    if 2 * r > scale or (2 * r == scale and q % 2):
        q += 1
    return q


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates: undecodable bytes of a file
    name) written as a backslash escape (``\\udcff``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_safe(value: Any) -> Any:
    """``value`` (dicts, lists, tuples, strings, numbers) with every string :func:`printable`,
    so that it always serializes as UTF-8 JSON."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
