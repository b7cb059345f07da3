"""The default alert rule of a fresh install, offered once per Redis.

`alerts:seeded` is set by the first worker that starts on a Redis (SETNX: only one wins a race); it adds the
default rule only when no rule exists yet, so an upgraded install keeps exactly the rules it had, and a user who
deletes the default never sees it come back.
"""

from __future__ import annotations

import redis

from qs_analytics.alerts import default_rule
from qs_common import control, keys


def seed_default_rule(r: redis.Redis, z_entry: float = control.Z_ENTRY, z_exit: float = control.Z_EXIT) -> bool:
    """True when this call added the default rule (|z| >= z_entry on every pair, re-armed once |z| < z_exit)."""
    if not r.set(keys.ALERT_RULES_SEEDED, "1", nx=True):
        return False
    if r.hlen(keys.ALERT_RULES):
        return False
    rule = default_rule(z_entry, z_exit)
    return bool(r.hsetnx(keys.ALERT_RULES, rule.id, rule.to_json()))
