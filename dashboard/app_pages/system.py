"""System: feed, consumers, dead letters, gaps and backfill, from the processes' status records."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard import data, timing
from dashboard.components import notices
from dashboard.frames import fmt_age, fmt_time
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
    (st.success if good else st.warning)(f"Feed {state} ({ingest.get('source', '?')}, {ingest.get('venue', '?')})")
    last = ingest.get("last_frame_ms")
    cols = st.columns(5)
    since = ingest.get("connected_since_ms")
    cols[0].metric("Connected since", fmt_time(since, c.tz) if since else "—")
    cols[1].metric("Last frame age", fmt_age(now - int(last)) if last else "—", help="exchange time of the last frame")
    cols[2].metric("Frames/s", ingest.get("frames_per_s", "—"))
    cols[3].metric("Dead letters", ingest.get("dead_letters", "—"))
    cols[4].metric("Gaps", ingest.get("gaps", "—"))


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
    feed(stats.get("ingest"), now)
    st.subheader("Consumers")
    rows: list[dict[str, Any]] = []
    for name in ("worker-candles", "worker-analytics", "worker-api"):
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
                "updated": fmt_age(now - int(s.get("updated_ms", now))) + " ago",
            }
        )
    st.dataframe(rows, hide_index=True)
    st.subheader("Backfill")
    backfill = stats.get("worker-backfill")
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
                    "from": fmt_time(int(f.get("start_ms", 0)), c.tz),
                    "to": fmt_time(int(f.get("end_ms", 0)), c.tz),
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
                {"id": i, "reason": f.get("reason"), "source": f.get("source"), "raw": f.get("raw", "")[:200]}
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
    others = sorted(set(stats) - {"ingest", "worker-candles", "worker-analytics", "worker-api", "worker-backfill"})
    with st.expander("All status records"):
        st.json(
            {k: stats[k] for k in ["ingest", "worker-candles", "worker-analytics", "worker-api", *others] if k in stats}
        )


system()
