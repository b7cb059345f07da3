"""Start-up's first contact with Redis, shared by every process: a short visible wait, then one clear line.

A malformed REDIS_URL is a setting error: it fails at once. An unreachable Redis (still starting, a container
coming up) is waited for REDIS_WAIT_S with a log line, then start-up stops with one line naming REDIS_URL and
the reason, never a traceback. A refused password fails at once too: waiting does not change it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.connection import parse_url
from redis.exceptions import AuthenticationError, RedisError, ResponseError

log = logging.getLogger("startup")

ANNOUNCE_EVERY_S = 5.0


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line to print, `code` the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def redact(url: str) -> str:
    """The URL without its password, fit for logs."""
    return re.sub(r"^([a-z]+://[^:@/]*:)[^@/]*@", r"\1***@", url)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_redis_url(url: str) -> None:
    """Raise StartupError (status 2, like any bad setting) when REDIS_URL cannot be a Redis address."""
    try:
        parse_url(url)  # what redis-py itself does with it
        if not url.startswith("unix://"):
            path = urlsplit(url).path.strip("/")
            if path and not path.isdigit():
                raise ValueError(f"database {path!r} is not a number")
            if urlsplit(url).port == 0:
                raise ValueError("port 0 is not a port")
    except ValueError as exc:
        raise StartupError(f"invalid setting REDIS_URL: {_one_line(exc)} ({redact(url)})", code=2) from None


def _refused(exc: BaseException) -> bool:
    """Credentials refused (a wrong or missing password): waiting does not help."""
    text = str(exc)
    return isinstance(exc, AuthenticationError) or (
        isinstance(exc, ResponseError) and text.startswith(("NOAUTH", "WRONGPASS", "NOPERM"))
    )


def _cluster_ok(client: redis.Redis) -> None:
    """A Redis Cluster node answers before the cluster serves every slot: wait for `cluster_state:ok` too."""
    info: Any = client.cluster("info")  # redis-py parses it into a dict
    state = info.get("cluster_state") if isinstance(info, dict) else None
    state = state.decode() if isinstance(state, bytes) else state
    if state != "ok":
        raise RedisError(f"the Redis Cluster is not ready (cluster_state: {state})")


def wait_for_redis(url: str, wait_s: float, cluster: bool = False) -> None:
    """Return once Redis answers PING (and, for `cluster`, serves every slot: REDIS_URL is then any seed node);
    StartupError after `wait_s` seconds of trying, or at once when hopeless."""
    check_redis_url(url)
    shown = redact(url)
    started = time.monotonic()
    announced = -ANNOUNCE_EVERY_S
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        while True:
            try:
                client.ping()
                if cluster:
                    _cluster_ok(client)
                if announced >= 0:
                    log.info("Redis at %s answers", shown)
                return
            except (RedisError, OSError) as exc:
                if "cluster support disabled" in str(exc):  # REDIS_CLUSTER=true against a plain Redis
                    raise StartupError(f"invalid setting REDIS_CLUSTER: Redis at {shown} is not a cluster node",
                                       code=2) from None
                if _refused(exc):
                    reason = _one_line(exc)
                    raise StartupError(f"Redis at REDIS_URL={shown} refused the credentials: {reason}") from None
                waited = time.monotonic() - started
                if waited >= wait_s:
                    raise StartupError(
                        f"cannot reach Redis at REDIS_URL={shown} (waited {waited:.1f} s, REDIS_WAIT_S={wait_s:g}): "
                        f"{_one_line(exc)}"
                    ) from None
                if waited - announced >= ANNOUNCE_EVERY_S:
                    announced = waited
                    log.warning("waiting for Redis at %s (%.0f s of %g s): %s", shown, waited, wait_s, _one_line(exc))
                time.sleep(min(0.5, wait_s - waited))
    finally:
        client.close()
