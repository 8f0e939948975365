"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, pg_ctl on a free port, one
database; stopped and deleted when the test session ends. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (``runuser``)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest


def _program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def postgres_server():
    """Yield the SQLAlchemy URL of a new, empty PostgreSQL database."""
    initdb, pg_ctl = _program("initdb"), _program("pg_ctl")
    if not initdb or not pg_ctl:
        message = "PostgreSQL is not installed (make test installs it with apt-get when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tempfile.mkdtemp(prefix="playground-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()
    log = os.path.join(root, "server.log")
    run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    try:
        subprocess.run([*as_user, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], **run)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run([*as_user, pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start"], **run)
        subprocess.run([*as_user, _program("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "postgres", "board"], **run)  # fmt: skip
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/board"
    except subprocess.CalledProcessError as error:
        pytest.fail(f"the throwaway PostgreSQL did not start: {error.stderr.decode(errors='replace')[-800:]}")
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
