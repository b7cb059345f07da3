"""System: feed, consumers, dead letters, gaps and backfill, from the processes' status records."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard import control_api, data, timing
from dashboard.components import notices
from dashboard.frames import fmt_age, fmt_time
from dashboard.safe import md
from dashboard.sidebar import Controls
from qs_common import keys
from qs_common.status import now_ms

c: Controls = st.session_state["_controls"]
st.title("System")


def feed(ingest: dict | None, now: int) -> None:
    st.subheader("Feed")
    if ingest is None:
        st.error("The feed is down: ingest has not reported in the last 10 seconds (no status:ingest record).")
        return
    state = str(ingest.get("state", "unknown"))
    good = state in ("connected", "replaying")
    (st.success if good else st.warning)(md(f"Feed {state} ({ingest.get('source', '?')}, {ingest.get('venue', '?')})"))
    last = ingest.get("last_frame_ms")
    cols = st.columns(5)
    since = ingest.get("connected_since_ms")
    cols[0].metric("Connected since", fmt_time(count(ingest, "connected_since_ms"), c.tz) if since else "—")
    age = fmt_age(now - count(ingest, "last_frame_ms")) if last else "—"
    cols[1].metric("Last frame age", age, help="exchange time of the last frame")
    cols[2].metric("Frames/s", str(ingest.get("frames_per_s", "—")))
    cols[3].metric("Dead letters", count(ingest, "dead_letters"))
    cols[4].metric("Gaps", count(ingest, "gaps"))
    reasons = ingest.get("dead_letter_reasons")
    if isinstance(reasons, dict) and reasons:
        st.dataframe(
            [{"dead-letter reason": str(k), "count": count(reasons, k)} for k in reasons],
            hide_index=True,
        )
    st.caption(f"Redis went back in time (lost acknowledged writes) {count(ingest, 'redis_rewinds')} time(s).")


def count(record: dict[str, Any] | None, name: str) -> int:
    """A counter from a status record: absent, null or not a number (an older process) reads as 0."""
    value = (record or {}).get(name)
    try:
        return int(value) if value is not None and not isinstance(value, bool) else 0
    except (TypeError, ValueError):
        return 0


def robustness(stats: dict[str, dict[str, Any]]) -> None:
    """Poison entries quarantined by the consumers and the kline check's findings."""
    st.subheader("Robustness")
    rows: list[dict[str, Any]] = []
    for name in (keys.STATUS_WORKER_CANDLES, keys.STATUS_WORKER_ANALYTICS):
        s = stats.get(name)
        last = s.get("last_quarantine") if s else None
        rows.append(
            {
                "process": name,
                "quarantined": count(s, "quarantined"),
                "last quarantine": json.dumps(last) if isinstance(last, list | dict) else str(last or "—"),
            }
        )
    st.dataframe(rows, hide_index=True)
    backfill = stats.get(keys.STATUS_WORKER_BACKFILL)
    cols = st.columns(3)
    cols[0].metric("1m candles checked against klines", count(backfill, "kline_checked"))
    cols[1].metric("Kline mismatches", count(backfill, "kline_mismatches"))
    cols[2].metric("Repaired from REST", count(backfill, "kline_repaired"))


WEBHOOKS = keys.worker_status("webhooks")  # the worker's webhook delivery (worker/webhooks.py)


def delivery(record: dict[str, Any] | None) -> None:
    """Alert delivery to webhooks: the delivery's counters as it reports them (delivered, failures, ...)."""
    st.subheader("Alert delivery (webhooks)")
    if record is None:
        st.caption("No webhook delivery reporting (no status:worker-webhooks record): no worker runs it.")
        return
    counters = {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)
                and not k.endswith("_ms")}  # fmt: skip
    if counters:
        cols = st.columns(min(len(counters), 6))
        for i, (name, value) in enumerate(counters.items()):
            cols[i % len(cols)].metric(name.replace("_", " "), f"{value:g}")
    for name, value in record.items():
        if isinstance(value, dict) and value:
            st.dataframe([{name: str(k), **_flat(v)} for k, v in value.items()], hide_index=True)
    last = record.get("last_error")
    if last:
        st.caption(md(f"Last delivery error: {last}"))


def _flat(value: object) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in value.items()}
    return {"value": str(value)}


def registry_panel() -> None:
    """The live registry (symbols, pairs with their engine settings, version) as every process sees it."""
    st.subheader("Live registry")
    try:
        reg = control_api.registry()
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    st.caption(md(f"Version {reg.version} · {len(reg.symbols)} active symbol(s): {', '.join(reg.symbols) or 'none'}"))
    if reg.pairs:
        st.dataframe([{"pair": pid, **ps.model_dump(exclude={"y", "x"})} for pid, ps in reg.pairs.items()],
                     hide_index=True, key="registry_pairs")  # fmt: skip
    else:
        st.caption("No pairs: the worker computes none.")


@st.fragment(run_every=None if c.refresh_s is None else max(c.refresh_s, 1.0))
def system() -> None:
    try:
        stats = data.statuses()
        dead = data.stream_last(keys.DEAD_LETTER_STREAM, 20)
        dead_n = data.stream_length(keys.DEAD_LETTER_STREAM)
        gaps = data.stream_last(keys.GAPS_STREAM, 50)
    except data.Unavailable as exc:
        notices.unavailable(str(exc))
        return
    now = now_ms()
    feed(stats.get(keys.STATUS_INGEST), now)
    registry_panel()
    delivery(stats.get(WEBHOOKS))
    robustness(stats)
    st.subheader("Consumers")
    rows: list[dict[str, Any]] = []
    for name in (keys.STATUS_WORKER_CANDLES, keys.STATUS_WORKER_ANALYTICS, keys.STATUS_WORKER_API):
        s = stats.get(name)
        if s is None:
            rows.append({"process": name, "state": "not reporting"})
            continue
        rows.append(
            {
                "process": name,
                "state": s.get("state"),
                "lag": s.get("lag"),
                "pending": s.get("pending"),
                "entries/s": s.get("entries_per_s"),
                "entries": s.get("entries"),
                "last event": fmt_time(s.get("last_event_ms"), c.tz),
                "updated": fmt_age(now - count(s, "updated_ms")) + " ago" if s.get("updated_ms") else "—",
            }
        )
    st.dataframe(rows, hide_index=True)
    st.subheader("Backfill")
    backfill = stats.get(keys.STATUS_WORKER_BACKFILL)
    if backfill is None:
        st.caption("No backfill running (no status:worker-backfill record).")
    else:
        shown = {k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in backfill.items()}
        st.dataframe([{"field": k, "value": v} for k, v in shown.items()], hide_index=True)
    st.subheader(f"Gaps ({len(gaps)} most recent)")
    if gaps:
        st.dataframe(
            [
                {
                    "from": fmt_time(count(f, "start_ms"), c.tz),
                    "to": fmt_time(count(f, "end_ms"), c.tz),
                    "symbols": f.get("symbols"),
                    "reason": f.get("reason"),
                }
                for _, f in reversed(gaps)
            ],
            hide_index=True,
        )
    else:
        st.caption("No gaps recorded.")
    st.subheader(f"Dead letters ({dead_n} held)")
    if dead:
        st.dataframe(
            [
                {
                    "id": i,
                    "source": f.get("source", "—"),
                    "reason": f.get("reason"),
                    "raw": f.get("raw", "")[:200],
                }
                for i, f in reversed(dead)
            ],
            hide_index=True,
        )
    else:
        st.caption("No dead letters.")
    render = timing.summary()
    if render:
        st.caption(
            "This session's live fragment server time: "
            + "; ".join(
                f"{k} p50 {v['p50_ms']:.0f} ms, p95 {v['p95_ms']:.0f} ms ({v['runs']:.0f} runs)"
                for k, v in render.items()
            )
        )
    first = [keys.STATUS_INGEST, keys.STATUS_WORKER_CANDLES, keys.STATUS_WORKER_ANALYTICS, keys.STATUS_WORKER_API]
    others = sorted(set(stats) - {*first, keys.STATUS_WORKER_BACKFILL})
    with st.expander("All status records"):
        st.json({k: stats[k] for k in [*first, *others] if k in stats})


system()
