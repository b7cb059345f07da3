"""Tell a transient failure (retry the same batch until it passes) from a poison entry (quarantine it).

Why it matters: retrying a poison entry forever stops the pipeline for good (nothing after it is ever stored),
while dead-lettering on a transient failure throws good data away because Redis or the disk hiccuped.
"""

from __future__ import annotations

import duckdb
from redis.exceptions import DataError as RedisDataError
from redis.exceptions import RedisError

# The environment's failures, not the data's: network and Redis, the file system (disk full, file too large,
# permissions, a lock held by another process), DuckDB's own I/O, transaction conflicts and memory limits, and
# a database invalidated by such an error. The same batch passes once the environment recovers, so these are
# retried in place, for as long as it takes; never bisected, never dead-lettered.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    RedisError, OSError, MemoryError,
    duckdb.OperationalError,  # IOException, TransactionException, OutOfMemoryException, ConnectionException
    duckdb.FatalException, duckdb.InterruptException, duckdb.PermissionException,
)
# Some libraries wrap an I/O failure in a generic error; its text still says what happened.
_TRANSIENT_TEXT = ("no space left", "disk full", "file too large", "could not set lock", "database is locked",
                   "out of memory")


def is_transient(exc: BaseException) -> bool:
    """True for a failure of the environment; False for one that the batch's data causes (poison candidates).

    Everything that is not recognisably environmental counts as data: conversion and range errors from DuckDB,
    ValueError, TypeError, ArithmeticError (overflow, decimal), polars compute errors and panics, missing fields.
    Such an error repeats for the same input; it is only acted on after the batch failed BATCH_RETRIES times in a
    row and bisection found the single entry that fails alone, and the dead letter keeps that entry whole, so a
    misjudged entry can still be replayed, whereas retrying it forever would stop every later entry.
    """
    if isinstance(exc, RedisDataError):  # redis-py refused a value we built from the entry: the data's fault
        return False
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT_TEXT)


def one_line(exc: BaseException, limit: int = 500) -> str:
    """`Type: message` on one line, bounded (a reason in a status record or a dead letter)."""
    text = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"
