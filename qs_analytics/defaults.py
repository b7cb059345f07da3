"""The one set of engine defaults. `Settings` (the live worker and the dashboard), `PairConfig` (the engine),
`KalmanHedge` and `python -m worker.analytics` all read these names, so that a figure computed offline with the
defaults is the figure the live product shows.
"""

from __future__ import annotations

WINDOW = 300  # rolling window in observations
ADF_EVERY_MS = 60_000  # ADF test on the spread window at most this often (observation time)

# Kalman hedge ratio: Q = δ/(1−δ)·I, observation noise R, initial covariance C·I. At BTC-level prices
# (x ≈ 6e4) the state noise must be tiny: with δ = 1e-4 the state moves so freely that it fits every y
# exactly and the spread is nothing but noise around 0.
KALMAN_DELTA = 1e-9
KALMAN_OBS_NOISE = 1.0
KALMAN_INIT_COV = 1.0

# Huber refits (~4 ms each) every N observations or T ms of observation time, whichever comes first.
HUBER_EVERY_N = 1_000
HUBER_EVERY_MS = 2_000
# Theil–Sen costs ~50 ms a refit: off unless asked for (the worker also turns it on when it is the beta source).
THEILSEN = False
