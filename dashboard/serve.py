"""`python -m dashboard [--port N]`: Streamlit with the product's settings; the launcher, compose and tests use it.

The one place the dashboard's Streamlit options are set, as command-line flags rather than a
.streamlit/config.toml: the upload limit follows API_MAX_BODY_MB and the address DASHBOARD_HOST (settings read
from the environment, which a static TOML cannot follow), and Streamlit reads config.toml only from the working
directory, so a start from elsewhere would silently lose the hardening. Plain `streamlit run dashboard/app.py`
still works for development, with Streamlit's developer defaults.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from qs_common.settings import Settings, load_settings

APP = Path(__file__).resolve().parent / "app.py"
DEFAULT_PORT = 8501


def upload_limit_mb(settings: Settings) -> int:
    """Streamlit's whole-MB upload limit for the API's body limit: a file the API would refuse is refused first."""
    return max(1, math.floor(settings.api_max_body_mb))


def streamlit_options(settings: Settings, port: int = DEFAULT_PORT) -> dict[str, str]:
    return {
        "server.address": settings.dashboard_host,
        "server.port": str(port),
        "server.headless": "true",
        "server.maxUploadSize": str(upload_limit_mb(settings)),
        # visitors get a generic message; the type, message and traceback go only to the server's log
        "client.showErrorDetails": "none",
        # no Deploy button, rerun or clear-cache menu for visitors
        "client.toolbarMode": "minimal",
        "browser.gatherUsageStats": "false",
        # a served app does not reload itself when its files change
        "server.fileWatcherType": "none",
    }


def command(settings: Settings, port: int = DEFAULT_PORT) -> list[str]:
    """The full `python -m streamlit run ...` command line."""
    flags = [part for name, value in streamlit_options(settings, port).items() for part in (f"--{name}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(APP), *flags]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="Serve the Quant-Stream dashboard.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    settings = load_settings()
    cmd = command(settings, args.port)
    # exec: Streamlit becomes this process, so SIGTERM from the launcher or Docker reaches it directly
    os.execv(cmd[0], cmd)
    return 0  # not reached
