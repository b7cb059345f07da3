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

# Dependencies first, from the lock alone (exact versions and hashes, the same that `make run` installs): this
# layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN python -m pip install --require-hashes -r requirements.lock && rm requirements.lock

# Then the code. The processes run from /app (`python -m ...` and `streamlit run dashboard/app.py` use the
# source tree in the working directory); the package is also installed so `import worker` works anywhere.
COPY pyproject.toml ./
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

# Start as root only to pick the user and make what is already in /app/data usable by it (see the script).
COPY scripts/qs-entrypoint.sh /usr/local/bin/qs-entrypoint
RUN chmod 755 /usr/local/bin/qs-entrypoint

# No VOLUME here: it would give the dashboard and every `docker run` an anonymous volume; compose mounts ./data.
EXPOSE 8000 8501
ENTRYPOINT ["/usr/local/bin/qs-entrypoint"]
CMD ["python", "-m", "worker"]
