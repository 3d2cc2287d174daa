"""`flask --app app bench-wait`: queued and lua with and without WAIT 1, on a primary and a replica
it starts and stops."""

from __future__ import annotations

import os
import re

import pytest
from flask import Flask

from coupon.lab.bench import wait_cost
from coupon.servers.pids import alive, children


def test_the_primary_has_a_synced_replica_and_both_are_stopped():
    before = {pid for pid in children(os.getpid()) if alive(pid)}
    with wait_cost.replicated() as primary:
        client = primary.client(decode_responses=True)
        client.set("acknowledged", 1)
        assert client.execute_command("WAIT", 1, 5000) == 1  # a replica took the write
        client.close()
        pids = {pid for pid in children(os.getpid()) if alive(pid)} - before
        assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)


@pytest.mark.slow
def test_the_command_measures_each_strategy_with_and_without_wait(app: Flask):
    found = app.test_cli_runner().invoke(
        args=["bench-wait", "--rounds", "1", "--calls", "200", "--threads", "4"]
    )
    assert found.exit_code == 0, found.output
    for strategy in wait_cost.STRATEGIES:
        for wait in (0, 1):
            assert re.search(rf"round 1 {strategy} +WAIT {wait}: +[\d,]+ calls/s .* errors 0\n", found.output)
    assert "what WAIT 1 costs" in found.output
