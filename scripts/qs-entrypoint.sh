#!/bin/sh
# The image's entrypoint (/usr/local/bin/qs-entrypoint): start as root only to pick the user, then run the
# command as that user.
# - The processes run as the owner of the data folder (a bind-mounted host folder keeps its owner, so files the
#   worker writes there stay the host user's), or as `app` when the folder belongs to root (e.g. Docker created
#   the missing bind folder), after giving it to `app`.
# - What root left in the folder (e.g. `make demo` run as root: data/market_data.duckdb) is given to that user
#   too, or the worker could not open it. A file of some other user is left alone and named in one line, with the
#   command that fixes it. A read-only mount stays as it is: reading is enough there.
# - Started with `--user`, it runs the command as that user unchanged.
# QS_DATA_DIR and QS_USER exist for the tests (tests/integration/test_entrypoint.py).
set -e
# Kubernetes (k8s/): a sharded worker's StatefulSet sets SHARD_COUNT (a number, or `replicas`) and no SHARD; its
# shard k is the pod's ordinal (HOSTNAME <set>-<k>), N the count (python -m qs_common.kube shard prints k/N).
if [ -z "${SHARD:-}" ] && [ -n "${SHARD_COUNT:-}" ]; then
  SHARD=$(python -m qs_common.kube shard) || exit 2
  export SHARD
fi
data=${QS_DATA_DIR:-/app/data}
user=${QS_USER:-app}
if [ "$(id -u)" != 0 ]; then exec "$@"; fi
mkdir -p "$data" 2>/dev/null || true
uid=$(stat -c %u "$data"); gid=$(stat -c %g "$data")
if [ "$uid" = 0 ]; then
  chown "$user:$(id -gn "$user")" "$data" 2>/dev/null || true
  uid=$(id -u "$user"); gid=$(id -g "$user")
fi
if [ -w "$data" ]; then
  # root's leftovers become the folder owner's (metadata only; nothing is copied)
  find "$data" -mindepth 1 -user 0 -exec chown -h "$uid:$gid" {} + 2>/dev/null || true
  for f in "$data"/market_data.duckdb*; do
    [ -e "$f" ] || continue
    owner=$(stat -c %u "$f")
    if [ "$owner" != "$uid" ]; then
      echo "qs-entrypoint: $f belongs to uid $owner, but the processes run as uid $uid (the data folder's owner): the worker cannot open it; on the host run: sudo chown -R $uid:$gid data/" >&2
    fi
  done
fi
if [ "$uid" != "$(id -u "$user")" ]; then export HOME=/tmp; fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
