"""`python -m worker.analytics --input IN.csv --window N ... --output OUT.csv` (see `batch`), and the
subcommands `backtest` and `garch` (see `cli_research`)."""

from worker.analytics.cli_research import main

raise SystemExit(main())
