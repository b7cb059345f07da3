"""The symbol check (worker/venue_check.py) against the local exchangeInfo server, spot and USDⓈ-M."""

from __future__ import annotations

import threading

import pytest

from qs_common.control import ControlError
from qs_common.venues.binance.config import Venue
from qs_common.venues.binance.exchange_info import parse_symbols
from tests.integration.klines_server import KlinesServer
from worker.backfill.client import KlinesClient
from worker.venue_check import POSITIVE_TTL_S, NotTrading, SymbolValidator, UnknownSymbol, VenueUnavailable

pytestmark = pytest.mark.integration

LISTING = {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING", "LUNAUSDT": "BREAK"}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("venue", [Venue.BINANCE_SPOT, Venue.BINANCE_USDM])
def test_check_asks_the_venue_and_remembers_only_yes(venue: Venue) -> None:
    clock = Clock()
    with KlinesServer({}, listing=dict(LISTING)) as rest:
        client = KlinesClient(rest.url, venue, 1000, threading.Event())
        v = SymbolValidator(venue, client, clock)
        try:
            assert v.mode == "venue"
            assert v.check(" btcusdt") == "BTCUSDT"
            assert v.check("BTCUSDT") == "BTCUSDT"
            with pytest.raises(UnknownSymbol, match=f"NOPEUSDT is not a symbol on {venue.value}"):
                v.check("NOPEUSDT")
            with pytest.raises(NotTrading, match=r"status BREAK"):
                v.check("LUNAUSDT")
            with pytest.raises(ControlError):
                v.check("no-symbol")
            paths = {p for p, _ in rest.info_requests}
            assert paths == {"/api/v3/exchangeInfo" if venue is Venue.BINANCE_SPOT else "/fapi/v1/exchangeInfo"}
            # spot asks per symbol; the futures listing names every contract, so ETHUSDT is known already
            asked = len(rest.info_requests)
            assert asked == 3
            assert v.check("ETHUSDT") == "ETHUSDT"
            assert len(rest.info_requests) == asked + (1 if venue is Venue.BINANCE_SPOT else 0)
            # a listing can change: after the cache's time the venue is asked again
            rest.listing["BTCUSDT"] = "HALT"
            assert v.check("BTCUSDT") == "BTCUSDT"
            clock.t += POSITIVE_TTL_S + 1
            with pytest.raises(NotTrading, match="status HALT"):
                v.check("BTCUSDT")
            assert client.stats.weight_spent == len(rest.info_requests) * (20 if venue is Venue.BINANCE_SPOT else 1)
        finally:
            client.close()


def test_an_unreachable_venue_is_503_not_a_yes() -> None:
    with KlinesServer({}, listing=dict(LISTING)) as rest:
        url = rest.url
    client = KlinesClient(url, Venue.BINANCE_SPOT, 1000, threading.Event(), timeout_s=2)
    try:
        with pytest.raises(VenueUnavailable, match="cannot validate BTCUSDT: venue unreachable"):
            SymbolValidator(Venue.BINANCE_SPOT, client).check("BTCUSDT")
    finally:
        client.close()


def test_without_a_venue_the_pattern_is_the_check() -> None:
    v = SymbolValidator(Venue.BINANCE_SPOT, None)
    assert v.mode == "pattern" and v.check("anyusdt") == "ANYUSDT"
    with pytest.raises(ControlError):
        v.check("any usdt")


def test_parse_keeps_every_well_formed_entry() -> None:
    body = {"symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"},
                        "junk", {"status": "TRADING"}, {"symbol": "ETHUSDT", "status": "BREAK"}]}
    got = parse_symbols(body)
    assert list(got) == ["BTCUSDT", "ETHUSDT"]
    assert got["BTCUSDT"].trading and not got["ETHUSDT"].trading
    with pytest.raises(ValueError, match="no symbols list"):
        parse_symbols({"code": -1121})
