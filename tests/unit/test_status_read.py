"""`qs_common.status.read_statuses`: the one reader of status records (the dashboard's System page uses it)."""

from __future__ import annotations

import json

import redis

from qs_common import keys
from qs_common.status import read_statuses, write_status
from tests.integration.browser_util import start_redis


def test_records_that_are_not_json_objects_are_left_out() -> None:
    for url in start_redis():
        r = redis.Redis.from_url(url)
        write_status(r, keys.STATUS_INGEST, {"state": "running"})
        r.set(keys.status_key("broken"), b"{not json")
        r.set(keys.status_key("a-list"), json.dumps([1, 2]))
        got = read_statuses(r)
        assert set(got) == {keys.STATUS_INGEST}
        assert got[keys.STATUS_INGEST]["state"] == "running"
