"""Pure pair and symbol analytics: values in, values out; no Redis, DuckDB, HTTP, asyncio, files or clock.

The worker (live engine, batch and research commands) and the dashboard both import the modules directly.
`pyproject.toml`'s import-linter contracts keep it that way (`lint-imports`).
"""
