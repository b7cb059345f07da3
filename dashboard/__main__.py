"""`python -m dashboard`: see dashboard.serve."""

from dashboard.serve import main

raise SystemExit(main())
