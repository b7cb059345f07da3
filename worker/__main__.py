"""`python -m worker`: consume the tick stream, store candles, publish analytics, serve history.

Runs until SIGTERM/SIGINT, then drains (finishes and acknowledges the batches in hand) and exits 0.
"""

from __future__ import annotations

import argparse
import sys

from qs_common.logs import setup_logging
from qs_common.settings import load_settings
from worker.service import ROLES, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    p.add_argument("--role", choices=ROLES, default="all", help="which consumer groups to run (default all)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    settings = load_settings()
    setup_logging(settings.log_level, f"worker[{args.role}]")
    # relax_gc (fewer, cheaper garbage collections) runs in run() once the role's modules are imported
    return run(settings, args.role)


if __name__ == "__main__":
    raise SystemExit(main())
