"""Metric names the pair engine emits, and the short names alert expressions may use for them.

Kept apart from the engine so that the alert parser (run by the dashboard too) needs no scikit-learn.
"""

from __future__ import annotations

METRIC_NAMES: tuple[str, ...] = (
    "n",
    "ols_beta", "ols_alpha", "ols_r2", "ols_resid_std",
    "kalman_beta", "kalman_alpha", "kalman_e", "kalman_s",
    "huber_beta", "huber_alpha", "huber_fair_value",
    "theilsen_beta", "theilsen_alpha",
    "hedge_beta", "hedge_alpha", "fair_value", "spread", "spread_mean", "spread_std", "zscore",
    "spread_ols", "zscore_ols",
    "corr", "half_life", "half_life_ms",
    "adf_stat", "adf_pvalue", "adf_lags",
    "eg_stat", "eg_pvalue", "eg_direction", "eg_pvalue_y_on_x", "eg_pvalue_x_on_y",
)  # fmt: skip

ALIASES: dict[str, str] = {
    "z": "zscore",
    "z_ols": "zscore_ols",
    "adf_p": "adf_pvalue",
    "adf": "adf_stat",
    "eg_p": "eg_pvalue",
    "r2": "ols_r2",
    "hl": "half_life",
    "halflife": "half_life",
    "correlation": "corr",
    "beta": "ols_beta",
    "alpha": "ols_alpha",
    "kalman_b": "kalman_beta",
    "huber_b": "huber_beta",
    "fv": "fair_value",
}
"""Short name -> metric name. `hedge_beta`/`hedge_alpha` are the β and α of the engine's configured β
source (the ones `spread` and `zscore` use); `beta` alone means the rolling OLS β."""


def resolve_metric(name: str) -> str:
    """The metric a (possibly short) name stands for; ValueError naming the choices if there is none."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in METRIC_NAMES:
        short = ", ".join(sorted(ALIASES))
        raise ValueError(f"unknown metric {name!r}: use one of {', '.join(METRIC_NAMES)} (or short names {short})")
    return key


SYMBOL_METRIC_NAMES: tuple[str, ...] = (
    "price", "n", "last_return", "momentum_bps_per_min", "price_z", "vol", "vol_annualised", "vwap",
    "garch_mu", "garch_omega", "garch_alpha", "garch_beta", "garch_persistence",
    "garch_sigma_now", "garch_sigma_next", "garch_sigma_5", "garch_sigma_60", "garch_cum_sigma_5",
    "garch_cum_sigma_60", "garch_sigma_next_ann", "garch_sigma_5_ann", "garch_sigma_60_ann",
    # the order book's metrics (issue 11: `book:metrics:{SYMBOL}` with a `book_` prefix, while the book is not stale)
    "book_mid", "book_microprice", "book_spread_bps", "book_imbalance_1", "book_imbalance_5", "book_imbalance_10",
    *(f"book_depth_{bps}bps_{side}_{unit}" for bps in (5, 10, 25) for side in ("bid", "ask")
      for unit in ("base", "quote")),
    *(f"book_cost_{side}_{n}_bps" for side in ("buy", "sell") for n in (10_000, 100_000)),
)  # fmt: skip
"""Fields of `symbol:stats:{SYMBOL}` a symbol alert rule may watch (the symbol statistics, the newest GARCH
fit and the order book's metrics; docs/contracts.md)."""

SYMBOL_ALIASES: dict[str, str] = {
    "momentum": "momentum_bps_per_min",
    "z": "price_z",
    "ret": "last_return",
    "vol_ann": "vol_annualised",
    "sigma_next": "garch_sigma_next",
    "sigma_next_ann": "garch_sigma_next_ann",
    "persistence": "garch_persistence",
    "spread_bps": "book_spread_bps",
    "imbalance": "book_imbalance_1",
}


def resolve_symbol_metric(name: str) -> str:
    """The symbol metric a (possibly short) name stands for; ValueError naming the choices if there is none."""
    key = name.strip().lower()
    key = SYMBOL_ALIASES.get(key, key)
    if key not in SYMBOL_METRIC_NAMES:
        short = ", ".join(sorted(SYMBOL_ALIASES))
        raise ValueError(
            f"unknown symbol metric {name!r}: use one of {', '.join(SYMBOL_METRIC_NAMES)} (or short names {short})"
        )
    return key
