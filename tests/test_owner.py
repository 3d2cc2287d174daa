"""A command's children die with it: stopped with their process group, on SIGTERM as on exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from coupon.core.config import PROJECT_ROOT
from coupon.lab.drive.serve import config_env
from coupon.servers import owner
from coupon.servers.pids import alive, descendants
from tests import backends
from tests.backends import Backend
from tests.queueing import wait_for

# A child that starts a grandchild (as gunicorn starts its workers) and waits for it.
PARENT_OF_ONE = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']).wait()"
)
# A child that outlives SIGTERM: the stop must come to SIGKILL.
DEAF = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(600)"
)


Tree = dict[int, str]  # pid -> its /proc stat start time: a reused pid is another process


def tree(root: int) -> Tree:
    """Return the live descendants of root, each with its start time."""
    return {pid: started for pid in descendants(root) if (started := start_time(pid))}


def start_time(pid: int) -> str:
    """Return the process's start time from /proc (empty once it is gone or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return ""
    return "" if fields[0] == "Z" else fields[19]


def left(processes: Tree) -> list[int]:
    """Return the processes of a tree that still run."""
    return [pid for pid, started in processes.items() if start_time(pid) == started]


def kill_left(processes: Tree) -> None:
    """Stop whatever a failed test left behind."""
    for pid in left(processes):
        os.kill(pid, signal.SIGKILL)


def test_stop_ends_the_child_and_what_it_started():
    process = owner.spawn([sys.executable, "-c", PARENT_OF_ONE])
    wait_for(lambda: len(tree(process.pid)) == 1, "the grandchild")
    family = {process.pid: start_time(process.pid), **tree(process.pid)}
    try:
        owner.stop(process)
        assert process.returncode == -signal.SIGTERM and left(family) == []
    finally:
        kill_left(family)


def test_a_child_deaf_to_sigterm_is_killed_after_the_timeout():
    with owner.owned([sys.executable, "-c", DEAF], timeout=0.5, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stdout.readline() == b"\n"  # SIGTERM ignored now
    assert process.returncode == -signal.SIGKILL and not alive(process.pid)


def test_a_block_left_by_an_exception_stops_its_child():
    with pytest.raises(KeyError), owner.owned([sys.executable, "-c", PARENT_OF_ONE]) as process:
        wait_for(lambda: len(tree(process.pid)) == 1, "the grandchild")
        family = {process.pid: start_time(process.pid), **tree(process.pid)}
        raise KeyError("the owner's block failed")
    assert left(family) == []


# The commands that start servers and load generators, each long enough to be stopped midway,
# with what shows that its children run: bench-http's three gunicorns, the lab's locust crowd.
COMMANDS = {
    "bench-http": (["bench-http", "--seconds", "60", "--rounds", "1", "--workers", "1"], "gunicorn", 6),
    "lab": (
        [
            "lab",
            "--strategies",
            "atomic_update",
            "--duration",
            "60",
            "--users",
            "2",
            "--sellouts",
            "1",
            "--quantity",
            "100000",
            "--workers",
            "1",
        ],
        "locust",
        1,
    ),
}


@pytest.fixture()
def command_env(backend: Backend, redis_server: str) -> Iterator[dict[str, str]]:
    """The environment of a flask command on this session's database and Redis; its keys go after."""
    config = backends.test_config(backend.url, redis_server)
    yield {**os.environ, **config_env(config)}
    with redis.Redis.from_url(redis_server) as client:
        for key in client.scan_iter(match=f"{config.redis_prefix}*", count=1000):
            client.delete(key)


def running(root: int, name: str) -> int:
    """Count the descendants of root whose command line names name."""
    found = 0
    for pid in descendants(root):
        try:
            found += name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_sigterm_to_a_command_leaves_none_of_its_processes(command: str, command_env, tmp_path: Path):
    args, name, count = COMMANDS[command]
    if command == "lab":
        args = [*args, "--output", str(tmp_path)]
    with open(tmp_path / "command.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", *args],
            cwd=PROJECT_ROOT,
            env=command_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    family: Tree = {}
    try:
        wait_for(lambda: running(process.pid, name) >= count, f"{count} {name} under {command}", timeout=120)
        family = tree(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
        assert left(family) == [], (tree(process.pid), (tmp_path / "command.log").read_text()[-3000:])
        assert process.returncode > 0  # it exited as on Ctrl-C, rather than died of the signal
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_left(family)
