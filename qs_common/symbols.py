"""The symbol vocabulary: one pattern for settings, API, consumers and dashboard."""

from __future__ import annotations

import re

# Binance symbols are upper-case letters and digits; 2..30 bounds what a key or a file name may hold.
SYMBOL = re.compile(r"[A-Z0-9]{2,30}")


def is_symbol(text: str) -> bool:
    """The whole text is a symbol (fullmatch: `$` alone would accept a trailing newline)."""
    return SYMBOL.fullmatch(text) is not None
