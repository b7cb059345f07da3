# One image for all three processes; docker-compose.yml picks the command:
#   python -m ingest | python -m worker | streamlit run dashboard/app.py
# Uses only what any Debian-based python:3.11-slim has (python, pip, sh, coreutils, util-linux's setpriv):
# no apk, no compilers (every dependency ships a manylinux wheel for CPython 3.11).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    DATA_DIR=/app/data \
    HOME=/home/app

# uid/gid 1000: the usual first user on a Linux host, so a bind-mounted ./data usually needs no change.
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the dependencies change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && python -m pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the code. The processes run from /app (`python -m ...` and `streamlit run dashboard/app.py` use the
# source tree in the working directory); the package is also installed so `import worker` works anywhere.
COPY qs_common/ qs_common/
COPY qs_analytics/ qs_analytics/
COPY ingest/ ingest/
COPY worker/ worker/
COPY dashboard/ dashboard/
RUN python -m pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q qs_common qs_analytics ingest worker dashboard \
    && mkdir -p /app/data \
    && chown app:app /app/data

# Start as root only to pick the user: the processes run as the owner of /app/data (a bind-mounted host
# folder keeps its owner, so files the worker writes there stay the host user's), or as `app` when
# /app/data belongs to root (e.g. Docker created the missing bind folder), after giving it to `app` (a
# read-only mount stays as it is: reading is enough there).
# Started with `--user`, it runs the command as that user unchanged.
RUN printf '%s\n' \
    '#!/bin/sh' \
    'set -e' \
    'if [ "$(id -u)" != 0 ]; then exec "$@"; fi' \
    'mkdir -p /app/data' \
    'uid=$(stat -c %u /app/data); gid=$(stat -c %g /app/data)' \
    'if [ "$uid" = 0 ]; then chown app:app /app/data 2>/dev/null || true; uid=$(id -u app); gid=$(id -g app); fi' \
    'if [ "$uid" != "$(id -u app)" ]; then export HOME=/tmp; fi' \
    'exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"' \
    > /usr/local/bin/qs-entrypoint \
    && chmod 755 /usr/local/bin/qs-entrypoint

# No VOLUME here: it would give the dashboard and every `docker run` an anonymous volume; compose mounts ./data.
EXPOSE 8000 8501
ENTRYPOINT ["/usr/local/bin/qs-entrypoint"]
CMD ["python", "-m", "worker"]
