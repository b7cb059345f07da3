"""Does a symbol exist on the venue, and does it trade? Asked before a symbol (or a pair's leg) joins the live
registry, through the worker's weight-aware REST client (`exchangeInfo`, qs_common/venues/binance/exchange_info.py).

Without a venue (SOURCE=synthetic, replay or ticks: the feed is made up or recorded, and Binance may be out of
reach) the check is the symbol pattern alone. A positive answer is remembered for POSITIVE_TTL_S, so re-adding a
symbol or adding pairs over known legs costs no weight; a negative one is not (a listing can start any minute).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from qs_common import control
from qs_common.venues.binance.config import Venue
from qs_common.venues.binance.exchange_info import (
    EXCHANGE_INFO_ENDPOINTS,
    ExchangeInfoError,
    SymbolInfo,
    is_invalid_symbol,
    parse_symbols,
)
from worker.backfill.client import FetchError, KlinesClient, RejectedRequest, Stopped

POSITIVE_TTL_S = 600.0


class UnknownSymbol(ValueError):
    """The venue does not list the symbol (the API's 422)."""


class NotTrading(ValueError):
    """The venue lists the symbol but it does not trade now (the API's 422)."""


class VenueUnavailable(RuntimeError):
    """The venue could not be asked; nothing is added unchecked (the API's 503)."""


class SymbolValidator:
    def __init__(self, venue: Venue, client: KlinesClient | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.venue = venue
        self.client = client  # None: no venue to ask, the pattern is the check
        self.endpoint = EXCHANGE_INFO_ENDPOINTS[venue]
        self.clock = clock
        self._trading_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "venue" if self.client is not None else "pattern"

    def check(self, symbol: object) -> str:
        """The symbol as stored, once it passed: ControlError (bad pattern), UnknownSymbol, NotTrading or
        VenueUnavailable otherwise."""
        sym = control.normal_symbol(symbol)
        if self.client is None:
            return sym
        with self._lock:
            if self._trading_until.get(sym, 0.0) > self.clock():
                return sym
        info = self._lookup(sym)
        if info is None:
            raise UnknownSymbol(f"{sym} is not a symbol on {self.venue.value} (its exchangeInfo does not list it)")
        if not info.trading:
            raise NotTrading(f"{sym} is listed on {self.venue.value} but does not trade now (status {info.status})")
        return sym

    def _lookup(self, sym: str) -> SymbolInfo | None:
        assert self.client is not None
        params: dict[str, str | int] = {"symbol": sym} if self.endpoint.per_symbol else {}
        try:
            body = self.client.get_json_now(self.endpoint.path, params, self.endpoint.weight)
            symbols = parse_symbols(body)
        except RejectedRequest as exc:
            if is_invalid_symbol(exc.status, exc.text):
                return None
            raise VenueUnavailable(f"cannot validate {sym}: the venue refused the check ({exc})") from None
        except (FetchError, ExchangeInfoError, Stopped) as exc:
            raise VenueUnavailable(f"cannot validate {sym}: venue unreachable ({exc or 'stopping'})") from None
        until = self.clock() + POSITIVE_TTL_S
        with self._lock:  # a futures listing names every contract: remember all that trade
            self._trading_until.update((s, until) for s, i in symbols.items() if i.trading)
        return symbols.get(sym)
