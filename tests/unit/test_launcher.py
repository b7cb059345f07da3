"""The launcher hands every child the worker API's address: API_URL when set, else the worker's own host and port."""

from __future__ import annotations

import pytest

from qs_common import launcher
from qs_common.settings import Settings


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "http://127.0.0.1:8000"),
    ({"API_PORT": "9123"}, "http://127.0.0.1:9123"),  # was: the default port 8000, where nothing listened
    ({"API_HOST": "0.0.0.0", "API_PORT": "9124"}, "http://127.0.0.1:9124"),
    ({"API_HOST": "10.1.2.3"}, "http://10.1.2.3:8000"),
    ({"API_URL": "http://api.example:81", "API_PORT": "9125"}, "http://api.example:81"),
])
def test_the_children_find_the_worker_api(monkeypatch, env, expected):
    for name in ("API_URL", "API_HOST", "API_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launcher.api_url(Settings()) == expected  # type: ignore[call-arg]


def test_worker_processes_get_one_blas_thread_unless_told_otherwise():
    # the candle process's research fits ran on the analytics handler's one BLAS thread while they shared a process
    assert launcher.worker_env({"PATH": "/bin"}) == {"OPENBLAS_NUM_THREADS": "1", "PATH": "/bin"}
    assert launcher.worker_env({"OPENBLAS_NUM_THREADS": "2"})["OPENBLAS_NUM_THREADS"] == "2"

