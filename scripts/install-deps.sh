#!/usr/bin/env bash
# Install what a make target needs, and nothing more. Safe to run again: it skips what is already there.
#   scripts/install-deps.sh run   running (make run, make demo): redis-server when it is missing and no REDIS_URL
#                                 is set, and the locked runtime packages (requirements.lock)
#   scripts/install-deps.sh dev   testing and linting (make test, make lint): redis-server, chromium and the
#                                 locked runtime + dev packages (requirements-dev.lock)
# Python packages go into the project's virtual environment $VENV (default .venv), created with $PYTHON
# (default python3; the lock is for CPython 3.11), never into the system interpreter. Debian packages come
# from apt-get, only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-dev}
case "$mode" in
  run) lock=requirements.lock; want=(redis-server) ;;
  dev) lock=requirements-dev.lock; want=(redis-server chromium) ;;
  *) echo "usage: $0 run|dev" >&2; exit 2 ;;
esac

need=()
for pkg in "${want[@]}"; do
  # running with REDIS_URL set uses that Redis: no local server needed
  if [ "$mode" = run ] && [ "$pkg" = redis-server ] && [ -n "${REDIS_URL:-}" ]; then continue; fi
  command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "missing ${need[*]}: install them with your package manager (apt-get install ${need[*]})" >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing ${need[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating the virtual environment $VENV with $("$PY" --version 2>&1)" >&2
  if ! "$PY" -m venv "$VENV"; then
    echo "cannot create $VENV: install your Python's venv module (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
# The dev lock holds every runtime pin too (same versions), so a dev install serves running as well.
stamp=$VENV/.installed-$mode
other=$VENV/.installed-dev
fresh() { [ -f "$1" ] && [ ! "$lock" -nt "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if fresh "$stamp" || { [ "$mode" = run ] && [ ! requirements.lock -nt "$other" ] && fresh "$other"; }; then
  exit 0
fi
echo "installing the locked packages ($lock) into $VENV" >&2
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r "$lock"
# the project itself, editable, without touching the locked packages
"${pip[@]}" install --no-deps -e .
touch "$stamp"
