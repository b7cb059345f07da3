"""The live control registry: which symbols are watched and which pairs are computed, with each pair's settings.

One place for the vocabulary of issue 10. The registry lives in Redis so that every process (ingest, each
worker role, the API, the dashboard) and every restart sees the same sets; `SYMBOLS` and `PAIRS` only seed it,
once, on a Redis that has never held it (`{control}:seeded`).

Keys (documented in docs/contracts.md):
- `{control}:symbols`  SET of active symbols (upper case).
- `{control}:pairs`    HASH pair id `Y/X` -> `PairSettings` JSON.
- `{control}:version`  INTEGER, incremented by every change: processes poll it (cheap, once a second) and reread
                       the sets only when it moved, so a change reaches every engine within a second.
- `{control}:seeded`   STRING, set once when the sets were seeded from the settings.

A pair's path form in the API is `Y-X` (`/pairs/SOLUSDT-BTCUSDT`): `/` cannot appear in a path segment.
Validation against the venue (the symbol exists and trades) is the API's job, before it calls `add_symbol`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qs_analytics import defaults as d
from qs_common.symbols import is_symbol

log = logging.getLogger(__name__)

# One hash tag for all four keys: in a Redis Cluster they share a slot, so every registry change stays one
# WATCH/MULTI transaction there as on a single node.
SYMBOLS_KEY = "{control}:symbols"
PAIRS_KEY = "{control}:pairs"
VERSION_KEY = "{control}:version"
SEEDED_KEY = "{control}:seeded"

# Binance allows 1,024 streams per connection; each symbol takes 2 (@trade, @bookTicker) or 3 with depth. The
# registry itself is bounded so a runaway script cannot make every process track thousands of engines.
MAX_SYMBOLS = 1_000
MAX_PAIRS = 500

BetaSource = Literal["ols", "kalman", "huber", "theilsen"]
PriceSource = Literal["trade", "mid"]

Z_ENTRY = 2.0  # default z band: the default alert rule fires at |z| >= 2 and re-arms below the exit band
Z_EXIT = 0.5
MAX_WINDOW_MS = 30 * 86_400_000  # a time window beyond a month is a typo (and must fit the engines' int64 ms)


class ControlError(ValueError):
    """A request the registry refuses (bad symbol or pair, a leg still in use, a bound reached)."""


class InUse(ControlError):
    """A symbol cannot be removed while a pair uses it (the API's 409)."""


class UnknownPair(ControlError):
    """The pair is not active (the API's 404)."""


def pair_id(y: str, x: str) -> str:
    return f"{y}/{x}"


def parse_pair_id(text: str) -> tuple[str, str]:
    """`Y/X` or the path form `Y-X` -> (y, x), both valid symbols and distinct; ControlError otherwise."""
    sep = "/" if "/" in text else "-"
    parts = text.strip().upper().split(sep)
    if len(parts) != 2 or not all(is_symbol(p) for p in parts):
        raise ControlError(f"{text[:80]!r} is not a pair; write Y/X or Y-X, like ETHUSDT-BTCUSDT")
    if parts[0] == parts[1]:
        raise ControlError(f"a pair needs two different symbols, got {parts[0]} twice")
    return parts[0], parts[1]


def normal_symbol(text: object) -> str:
    """A symbol as stored (upper case), or ControlError naming what is wrong."""
    if not isinstance(text, str):
        raise ControlError("symbol must be a string like SOLUSDT")
    sym = text.strip().upper()
    if not is_symbol(sym):
        raise ControlError(f"{text[:80]!r} is not a symbol: 2-30 letters and digits, like SOLUSDT")
    return sym


class PairSettings(BaseModel):
    """One pair's engine settings. Unknown fields are an error, so a misspelt setting cannot be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    y: str
    x: str
    window: int = Field(d.WINDOW, ge=2, le=100_000, description="rolling window in observations")
    window_ms: int | None = Field(None, gt=0, le=MAX_WINDOW_MS, description="also drop observations older than this")
    beta_source: BetaSource = "ols"
    delta: float = Field(d.KALMAN_DELTA, gt=0.0, lt=1.0, description="Kalman state noise δ")
    obs_noise: float = Field(d.KALMAN_OBS_NOISE, gt=0.0, description="Kalman observation noise R")
    z_entry: float = Field(Z_ENTRY, gt=0.0, le=20.0, description="|z| band that fires the pair's default alert")
    z_exit: float = Field(Z_EXIT, ge=0.0, le=20.0, description="|z| below which that alert re-arms")
    price_source: PriceSource = "trade"

    @field_validator("y", "x", mode="before")
    @classmethod
    def _symbol(cls, value: object) -> str:
        return normal_symbol(value)

    @model_validator(mode="after")
    def _check(self) -> PairSettings:
        if self.y == self.x:
            raise ValueError(f"a pair needs two different symbols, got {self.y} twice")
        if self.z_exit >= self.z_entry:
            raise ValueError(f"z_exit ({self.z_exit}) must be below z_entry ({self.z_entry})")
        return self

    @property
    def id(self) -> str:
        return pair_id(self.y, self.x)

    @property
    def path_id(self) -> str:
        return f"{self.y}-{self.x}"


def pair_from_body(body: object, defaults: PairSettings | None = None) -> PairSettings:
    """Validate an API/dashboard body into PairSettings (missing fields from `defaults`); ControlError names the
    field that is wrong. An `id` (as `GET /pairs` lists it) may come along if it names the same pair."""
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object like {\"y\": \"SOLUSDT\", \"x\": \"BTCUSDT\"}")
    fields = dict(body)
    given_id = fields.pop("id", None)
    base = defaults.model_dump() if defaults is not None else {}
    try:
        ps = PairSettings.model_validate({**base, **fields})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ControlError(f"{where}: {first['msg']}") from None
    if given_id is not None and given_id not in (ps.id, ps.path_id):
        raise ControlError(f"id: {str(given_id)[:80]!r} is not the pair of y and x ({ps.id})")
    return ps


def default_pair(settings: object, y: str, x: str) -> PairSettings:
    """A pair with the deployment's engine settings (OLS_WINDOW, BETA_SOURCE, KALMAN_*, ANALYTICS_PRICE...)."""
    return PairSettings(
        y=y, x=x, window=getattr(settings, "ols_window", d.WINDOW),
        window_ms=getattr(settings, "analytics_window_ms", None),
        beta_source=getattr(settings, "beta_source", "ols"),
        delta=getattr(settings, "kalman_delta", d.KALMAN_DELTA),
        obs_noise=getattr(settings, "kalman_obs_noise", d.KALMAN_OBS_NOISE),
        price_source=getattr(settings, "analytics_price", "trade"),
    )


def _transaction(r: redis.Redis, txn: Callable[[Any], Any], *watch: str, value_from_callable: bool = False) -> Any:
    """`r.transaction`: WATCH + MULTI, on a single node and on a Redis Cluster alike (the keys share a slot)."""
    return r.transaction(txn, *watch, value_from_callable=value_from_callable)


def seed(r: redis.Redis, settings: object) -> bool:
    """Seed the registry from SYMBOLS/PAIRS once per Redis; True when this call seeded it.

    Safe to race and to crash: the check of `{control}:seeded` and every write are one transaction (WATCH), so
    exactly one process seeds, and never half of it."""
    symbols = tuple(getattr(settings, "symbols", ()))
    legs = settings.pair_legs() if hasattr(settings, "pair_legs") else []
    pairs = [default_pair(settings, y, x) for y, x in legs]

    def txn(pipe: redis.client.Pipeline) -> bool:
        if pipe.exists(SEEDED_KEY):
            return False
        pipe.multi()
        pipe.set(SEEDED_KEY, "1")
        if symbols:
            pipe.sadd(SYMBOLS_KEY, *symbols)
        for ps in pairs:
            pipe.sadd(SYMBOLS_KEY, ps.y, ps.x)
            pipe.hset(PAIRS_KEY, ps.id, ps.model_dump_json())
        pipe.incr(VERSION_KEY)
        return True

    return bool(_transaction(r, txn, SEEDED_KEY, value_from_callable=True))  # type: ignore[arg-type]


def version(r: redis.Redis) -> int:
    raw = r.get(VERSION_KEY)
    return int(raw) if raw else 0  # type: ignore[arg-type]


def active_symbols(r: redis.Redis) -> tuple[str, ...]:
    """Active symbols, sorted (entries that are not symbols are skipped: the registry never stores them)."""
    out = []
    for raw in r.smembers(SYMBOLS_KEY):  # type: ignore[union-attr]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if is_symbol(text):
            out.append(text)
    return tuple(sorted(out))


_reported: set[bytes | str] = set()  # malformed entries already logged by this process (once each, not every poll)


def _decode_pair(key: bytes | str, value: bytes | str) -> PairSettings | None:
    try:
        ps = PairSettings.model_validate(json.loads(value))
        if ps.id != (key.decode("utf-8", "replace") if isinstance(key, bytes) else key):  # either client kind
            raise ValueError(f"it holds the settings of {ps.id}")
    except (ValueError, ValidationError) as exc:  # written by hand or by a newer version: skip, do not crash
        if key not in _reported:
            _reported.add(key)
            log.warning("%s entry %r skipped: %s", PAIRS_KEY, key[:80], " ".join(str(exc).split())[:300])
        return None
    return ps


def active_pairs(r: redis.Redis) -> dict[str, PairSettings]:
    """Pair id -> settings, sorted by id; an entry that does not validate is skipped (and logged once)."""
    out: dict[str, PairSettings] = {}
    raw: dict[bytes, bytes] = r.hgetall(PAIRS_KEY)  # type: ignore[assignment]
    for key, value in sorted(raw.items()):
        ps = _decode_pair(key, value)
        if ps is not None:
            out[ps.id] = ps
    return out


def get_pair(r: redis.Redis, pid: str) -> PairSettings | None:
    """One pair's settings (`Y/X` or `Y-X`), None when it is not active (or its entry does not validate)."""
    y, x = parse_pair_id(pid)
    raw = r.hget(PAIRS_KEY, pair_id(y, x))
    return _decode_pair(pair_id(y, x).encode(), raw) if raw is not None else None  # type: ignore[arg-type]


def add_symbol(r: redis.Redis, symbol: str) -> bool:
    """Add a (venue-validated) symbol; True when it was new."""
    sym = normal_symbol(symbol)
    if r.scard(SYMBOLS_KEY) >= MAX_SYMBOLS and not r.sismember(SYMBOLS_KEY, sym):  # type: ignore[operator]
        raise ControlError(f"at most {MAX_SYMBOLS} active symbols")
    pipe = r.pipeline(transaction=True)
    pipe.sadd(SYMBOLS_KEY, sym)
    pipe.incr(VERSION_KEY)
    added, _ = pipe.execute()
    return bool(added)


def pairs_using(r: redis.Redis, symbol: str) -> list[str]:
    return [pid for pid, ps in active_pairs(r).items() if symbol in (ps.y, ps.x)]


def remove_symbol(r: redis.Redis, symbol: str) -> bool:
    """Stop watching a symbol (its stored history stays). Refused (InUse) while a pair uses it: remove the pair
    first. True when it was active. The pairs are WATCHed, so a pair added meanwhile is seen, not orphaned."""
    sym = normal_symbol(symbol)

    def txn(pipe: redis.client.Pipeline) -> None:
        used = pairs_using(pipe, sym)
        if used:
            raise InUse(f"{sym} is a leg of {', '.join(used)}: remove the pair first")
        pipe.multi()
        pipe.srem(SYMBOLS_KEY, sym)
        pipe.incr(VERSION_KEY)

    results: list[int] = _transaction(r, txn, PAIRS_KEY)  # type: ignore[assignment]
    return bool(results[0])


def put_pair(r: redis.Redis, ps: PairSettings) -> bool:
    """Add or replace a pair (its legs become active symbols: validate them on the venue first). True when new."""
    if r.hlen(PAIRS_KEY) >= MAX_PAIRS and not r.hexists(PAIRS_KEY, ps.id):  # type: ignore[operator]
        raise ControlError(f"at most {MAX_PAIRS} pairs")
    new_legs = [s for s in (ps.y, ps.x) if not r.sismember(SYMBOLS_KEY, s)]
    if new_legs and r.scard(SYMBOLS_KEY) + len(new_legs) > MAX_SYMBOLS:  # type: ignore[operator]
        raise ControlError(f"at most {MAX_SYMBOLS} active symbols")
    pipe = r.pipeline(transaction=True)
    pipe.sadd(SYMBOLS_KEY, ps.y, ps.x)
    pipe.hset(PAIRS_KEY, ps.id, ps.model_dump_json())
    pipe.incr(VERSION_KEY)
    _, added, _ = pipe.execute()
    return bool(added)


def update_pair(r: redis.Redis, pid: str, changes: object) -> PairSettings:
    """Change some of an active pair's settings (a partial body); the stored pair after the change.
    UnknownPair when it is not active; ControlError for a bad field or an attempt to change its legs."""
    current = get_pair(r, pid)
    if current is None:
        raise UnknownPair(f"{pid[:80]!r} is not an active pair")
    ps = pair_from_body(changes, defaults=current)
    if ps.id != current.id:
        raise ControlError(f"y, x: the legs of {current.id} cannot change; add {ps.id} and remove {current.id}")

    def txn(pipe: redis.client.Pipeline) -> None:
        if not pipe.hexists(PAIRS_KEY, ps.id):  # removed meanwhile: do not bring it back
            raise UnknownPair(f"{ps.id} was removed")
        pipe.multi()
        pipe.hset(PAIRS_KEY, ps.id, ps.model_dump_json())
        pipe.incr(VERSION_KEY)

    _transaction(r, txn, PAIRS_KEY)
    return ps


def remove_pair(r: redis.Redis, pid: str) -> bool:
    """Remove a pair (`Y/X` or `Y-X`); its legs stay active. True when it existed."""
    y, x = parse_pair_id(pid)
    pipe = r.pipeline(transaction=True)
    pipe.hdel(PAIRS_KEY, pair_id(y, x))
    pipe.incr(VERSION_KEY)
    removed, _ = pipe.execute()
    return bool(removed)


class Watcher:
    """Polls `{control}:version` and rereads the registry only when it moved: `poll()` returns the new
    (symbols, pairs) after a change (and on the first call), else None. One GET a call."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.seen: int | None = None

    def poll(self) -> tuple[tuple[str, ...], dict[str, PairSettings]] | None:
        v = version(self.r)
        if v == self.seen:
            return None
        self.seen = v
        return active_symbols(self.r), active_pairs(self.r)
