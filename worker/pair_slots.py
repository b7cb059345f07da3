"""The analytics consumer's live pairs: one aligner + engine per pair of the registry, and how a registry change
maps onto them (add, drop, rebuild, relabel).

A pair's engine is rebuilt when a setting the numbers depend on changes (window, window_ms, beta source, Kalman
δ and R, price source); a change of the z bands only relabels its entries (the bands drive alerts, not the
engine). Each entry carries its pair's settings (`labels`) so the dashboard can say what it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qs_analytics.align import PairAligner
from qs_analytics.engine import PairConfig, PairEngine
from qs_common.control import PairSettings
from qs_common.settings import Settings

# The settings an engine's numbers depend on: any change rebuilds it (and warms it again).
ENGINE_FIELDS = ("window", "window_ms", "beta_source", "delta", "obs_noise", "price_source")

StreamId = tuple[int, int]  # a Redis stream entry id as (ms, seq): ordered like the stream


def stream_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def pair_config(settings: Settings, ps: PairSettings | None = None) -> PairConfig:
    """The engine settings of one pair: its own (window, β source, δ, R) over the deployment's (Settings)."""
    beta_source = ps.beta_source if ps is not None else settings.beta_source
    return PairConfig(
        window=ps.window if ps is not None else settings.ols_window,
        window_ms=ps.window_ms if ps is not None else settings.analytics_window_ms,
        beta_source=beta_source,
        delta=ps.delta if ps is not None else settings.kalman_delta,
        obs_noise=ps.obs_noise if ps is not None else settings.kalman_obs_noise,
        init_cov=settings.kalman_init_cov, adf_every_ms=int(settings.adf_every_s * 1000),
        theilsen=settings.theilsen or beta_source == "theilsen",
        huber_every_n=settings.huber_every_n, huber_every_ms=settings.huber_every_ms,
    )


def labels(ps: PairSettings) -> dict[str, str]:
    """The settings an analytics entry carries (stream field -> text), so the screen labels what it shows."""
    out = {"window": str(ps.window), "beta_source": ps.beta_source, "price_source": ps.price_source,
           "z_entry": repr(ps.z_entry), "z_exit": repr(ps.z_exit)}
    if ps.window_ms is not None:
        out["window_ms"] = str(ps.window_ms)
    return out


@dataclass(slots=True)
class PairSlot:
    """One live pair: its settings, as-of aligner and engine."""

    settings: PairSettings
    aligner: PairAligner
    engine: PairEngine
    labels: dict[str, str]
    # Ticks at or below this stream id were already replayed into the engine by the warm-up: skipped if the
    # consumer delivers them (a claimed or re-read entry), so no tick counts twice. None once behind us.
    skip_until: StreamId | None = None
    mid: bool = field(init=False)  # priced at the book mid, else at trades
    pair: str = field(init=False)  # `Y/X`, made once (the hot loop reads it per observation)

    def __post_init__(self) -> None:
        self.mid = self.settings.price_source == "mid"
        self.pair = self.aligner.pair


def new_slot(settings: Settings, ps: PairSettings) -> PairSlot:
    return PairSlot(ps, PairAligner(ps.y, ps.x), PairEngine(pair_config(settings, ps)), labels(ps))


def needs_rebuild(old: PairSettings, new: PairSettings) -> bool:
    return any(getattr(old, f) != getattr(new, f) for f in ENGINE_FIELDS)


@dataclass(frozen=True)
class Plan:
    """What a registry change does to the live pairs (pair ids)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()
    relabelled: tuple[str, ...] = ()

    @property
    def fresh(self) -> tuple[str, ...]:
        """The pairs that get a new engine (and a warm-up)."""
        return self.added + self.rebuilt


def plan(current: dict[str, PairSettings], wanted: dict[str, PairSettings]) -> Plan:
    added = tuple(p for p in wanted if p not in current)
    removed = tuple(p for p in current if p not in wanted)
    common = [p for p in wanted if p in current and wanted[p] != current[p]]
    rebuilt = tuple(p for p in common if needs_rebuild(current[p], wanted[p]))
    relabelled = tuple(p for p in common if p not in rebuilt)
    return Plan(added, removed, rebuilt, relabelled)


def routes(slots: dict[str, PairSlot]) -> tuple[dict[str, list[PairSlot]], dict[str, list[PairSlot]]]:
    """symbol -> the pairs it feeds, priced by trades and by book mids: a tick visits only its own pairs."""
    trade: dict[str, list[PairSlot]] = {}
    mid: dict[str, list[PairSlot]] = {}
    for slot in slots.values():
        table = mid if slot.mid else trade
        for sym in (slot.settings.y, slot.settings.x):
            table.setdefault(sym, []).append(slot)
    return trade, mid
