"""`python -m worker.analytics --input IN.csv --window N ... --output OUT.csv` (see `batch`)."""

from worker.analytics.batch import main

raise SystemExit(main())
