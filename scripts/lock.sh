#!/usr/bin/env bash
# Re-lock the dependencies after a change to pyproject.toml (`make lock`): exact versions and hashes, resolved
# against PyPI alone for CPython 3.11 on x86_64 Linux (glibc ≥ 2.28), whatever local indexes or constraints
# this machine's pip has. requirements.lock is what running needs (make run/demo, the image);
# requirements-dev.lock adds the test and lint tools (make test, CI). Needs uv (`pip install uv`).
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple
        --generate-hashes --no-header --annotation-style line --quiet)
uv pip compile pyproject.toml "${common[@]}" -o requirements.lock
uv pip compile pyproject.toml --extra dev "${common[@]}" -o requirements-dev.lock
echo "locked: $(grep -c '==' requirements.lock) packages to run, $(grep -c '==' requirements-dev.lock) with the dev tools"
