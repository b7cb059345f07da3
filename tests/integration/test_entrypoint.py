"""The image's entrypoint (scripts/qs-entrypoint.sh) run for real as root, against a data folder on disk.

No Docker here: the script takes its data folder and user from QS_DATA_DIR / QS_USER (the image uses
/app/data and `app`), and `nobody` stands in for `app`. It needs root (to chown and to switch user with setpriv).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"),
]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "qs-entrypoint.sh"
HOST_UID, HOST_GID, STRANGER = 1234, 1234, 4321  # a host user's folder; someone else's file


@pytest.fixture
def data() -> Iterator[Path]:
    # under /tmp with mode 755: pytest's tmp_path sits in a root-only folder the switched user could not enter
    top = Path(tempfile.mkdtemp(prefix="qs-entry-", dir="/tmp"))
    top.chmod(0o755)
    folder = top / "data"
    folder.mkdir()
    yield folder
    shutil.rmtree(top)


def run(folder: Path, *cmd: str, as_user: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "QS_DATA_DIR": str(folder), "QS_USER": "nobody"}
    args = [str(SCRIPT), *cmd]
    if as_user is not None:  # like `docker run --user`
        u = pwd.getpwnam(as_user)
        args = ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--clear-groups", "--", *args]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=False)


def leftovers(folder: Path) -> list[Path]:
    """What `make demo` run as root leaves: the DuckDB file, its WAL, and the launcher's Redis folder."""
    files = [folder / "market_data.duckdb", folder / "market_data.duckdb.wal", folder / "redis" / "appendonly.aof"]
    for f in files:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x")
        os.chown(f, 0, 0)
    return files


def probe(folder: Path) -> tuple[str, ...]:
    db = folder / "market_data.duckdb"
    return ("sh", "-c", f'id -u; test -w "{db}" && test -w "{db}.wal" && echo writable')


def test_a_root_owned_folder_and_files_are_given_to_the_app_user(data):
    files = leftovers(data)
    os.chown(data, 0, 0)
    done = run(data, *probe(data))
    nobody = pwd.getpwnam("nobody")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(nobody.pw_uid), "writable"]
    assert done.stderr == ""
    for path in [data, *files]:
        assert path.stat().st_uid == nobody.pw_uid, path


def test_root_files_in_a_host_users_folder_become_that_users_and_the_folder_keeps_its_owner(data):
    files = leftovers(data)
    os.chown(data, HOST_UID, HOST_GID)
    done = run(data, *probe(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(HOST_UID), "writable"]
    assert data.stat().st_uid == HOST_UID
    for path in files:
        assert (path.stat().st_uid, path.stat().st_gid) == (HOST_UID, HOST_GID), path


def test_another_users_database_is_left_alone_and_named_in_one_line_with_the_fix(data):
    db = data / "market_data.duckdb"
    db.write_bytes(b"x")
    os.chown(db, STRANGER, STRANGER)
    os.chown(data, HOST_UID, HOST_GID)
    done = run(data, "id", "-u")
    assert done.returncode == 0 and done.stdout.strip() == str(HOST_UID)
    assert db.stat().st_uid == STRANGER
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{db} belongs to uid {STRANGER}" in lines[0] and f"uid {HOST_UID}" in lines[0]
    assert lines[0].endswith(f"sudo chown -R {HOST_UID}:{HOST_GID} data/")


def test_started_as_a_user_it_runs_the_command_unchanged(data):
    files = leftovers(data)
    done = run(data, "id", "-u", as_user="nobody")
    assert done.returncode == 0 and done.stdout.strip() == str(pwd.getpwnam("nobody").pw_uid)
    assert all(f.stat().st_uid == 0 for f in files)
