"""Binance's `exchangeInfo`: which symbols exist on a venue and whether they trade (issue 10's symbol check).

Spot and Binance.US: `GET /api/v3/exchangeInfo?symbol=SOLUSDT` (weight 20) answers one symbol; an unknown one
is HTTP 400 `{"code": -1121, "msg": "Invalid symbol."}`. USDⓈ-M futures: `GET /fapi/v1/exchangeInfo` (weight 1)
takes no symbol and lists every contract. Both answer (fields we read; the rest is ignored):

    {"timezone": "UTC", "serverTime": 1723161300000, "rateLimits": [...],
     "symbols": [{"symbol": "SOLUSDT", "status": "TRADING", "baseAsset": "SOL", "quoteAsset": "USDT", ...}]}

`status` is `TRADING` for a symbol that trades now; others: spot `HALT`, `BREAK` (delisted or paused);
futures `PENDING_TRADING`, `PRE_DELIVERING`, `DELIVERING`, `DELIVERED`, `PRE_SETTLE`, `SETTLING`, `CLOSE`.
Pure: parsing only, the transport is the worker's REST client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from qs_common.venues.binance.config import Venue

TRADING = "TRADING"
INVALID_SYMBOL_CODE = -1121


@dataclass(frozen=True)
class Endpoint:
    path: str
    weight: int
    per_symbol: bool  # takes `symbol=` (spot) or lists every symbol (futures)


EXCHANGE_INFO_ENDPOINTS: dict[Venue, Endpoint] = {
    Venue.BINANCE_SPOT: Endpoint("/api/v3/exchangeInfo", 20, True),
    Venue.BINANCE_US: Endpoint("/api/v3/exchangeInfo", 20, True),
    Venue.BINANCE_USDM: Endpoint("/fapi/v1/exchangeInfo", 1, False),
}


class ExchangeInfoError(ValueError):
    """An answer that is not what Binance sends."""


@dataclass(frozen=True)
class SymbolInfo:
    symbol: str
    status: str
    base_asset: str
    quote_asset: str

    @property
    def trading(self) -> bool:
        return self.status == TRADING


def parse_symbols(body: object) -> dict[str, SymbolInfo]:
    """An exchangeInfo answer -> symbol -> SymbolInfo; ExchangeInfoError when it has no `symbols` list."""
    if not isinstance(body, dict) or not isinstance(body.get("symbols"), list):
        raise ExchangeInfoError(f"exchangeInfo answer has no symbols list: {str(body)[:200]}")
    out: dict[str, SymbolInfo] = {}
    for entry in body["symbols"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("symbol"), str):
            continue  # one odd entry must not hide the others
        out[entry["symbol"]] = SymbolInfo(entry["symbol"], str(entry.get("status", "")),
                                          str(entry.get("baseAsset", "")), str(entry.get("quoteAsset", "")))
    return out


def is_invalid_symbol(status_code: int, text: str) -> bool:
    """Binance's "no such symbol" answer: HTTP 400 with code -1121."""
    if status_code != 400:
        return False
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("code") == INVALID_SYMBOL_CODE
