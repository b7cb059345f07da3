"""Depth wire schemas (Binance's one-letter names, kept at the edge) and the domain diffs and snapshots they become.

Shared by ingest (which parses depth frames and replays the recorded REST snapshot) and the worker's book role
(which keeps the local books), so the two cannot drift apart. Prices and quantities stay decimal text exactly as
Binance sent them; a level `[price, "0.00000000"]` in a diff removes that price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Strict

from qs_common.models import DecimalText, PositiveInt64, SymbolText

_WIRE = ConfigDict(extra="ignore", frozen=True, strict=True)

# A level is a 2-element array on the wire; strict mode would take only a Python tuple from `json.loads` output,
# so the pair itself is lax (the texts inside stay strict decimal text).
Level = Annotated[tuple[DecimalText, DecimalText], Strict(False)]
Venue = Literal["spot", "usdm"]


class DepthUpdateMsg(BaseModel):
    """`<symbol>@depth@100ms` payload (spot).

    {"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,
     "b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"]]}
    U is the first update id in the event, u the final one; levels carry absolute quantities.
    """

    model_config = _WIRE
    e: str
    E: PositiveInt64
    s: SymbolText
    U: PositiveInt64
    u: PositiveInt64
    b: list[Level]
    a: list[Level]


class FuturesDepthUpdateMsg(DepthUpdateMsg):
    """`<symbol>@depth@100ms` payload (USDⓈ-M futures): the spot fields plus `pu` and the transaction time `T`.

    {"e":"depthUpdate","E":1723161255308,"T":1723161255305,"s":"BTCUSDT","U":157,"u":160,"pu":149,
     "b":[["61837.6","1.234"]],"a":[]}
    `pu` is the final update id of the previous event on this stream: continuity is pu == previous u.
    """

    pu: PositiveInt64
    T: PositiveInt64 | None = None


class DepthSnapshotMsg(BaseModel):
    """REST `GET /api/v3/depth` (spot) or `GET /fapi/v1/depth` (USDⓈ-M) answer.

    {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],...],"asks":[...]}
    USDⓈ-M adds the message time `E` and transaction time `T`.
    """

    model_config = _WIRE
    lastUpdateId: PositiveInt64
    bids: list[Level]
    asks: list[Level]
    E: PositiveInt64 | None = None
    T: PositiveInt64 | None = None


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """One depth event in domain names. `prev_final_id` is USDⓈ-M's `pu` (None on spot)."""

    symbol: str
    first_id: int
    final_id: int
    prev_final_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event_ms: int
    recv_ns: int


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A full book at update id `last_update_id` (a REST answer, or one rebuilt from a correct local book)."""

    symbol: str
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_event_ms: int | None = None


def diff_from_msg(msg: DepthUpdateMsg, recv_ns: int) -> DepthDiff:
    pu = msg.pu if isinstance(msg, FuturesDepthUpdateMsg) else None
    return DepthDiff(msg.s.upper(), msg.U, msg.u, pu, tuple(msg.b), tuple(msg.a), msg.E, recv_ns)


def snapshot_from_msg(msg: DepthSnapshotMsg, symbol: str) -> DepthSnapshot:
    """The REST answer names no symbol: the caller knows which one it asked for."""
    return DepthSnapshot(symbol.upper(), msg.lastUpdateId, tuple(msg.bids), tuple(msg.asks), msg.E)
