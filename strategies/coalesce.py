"""Send the script calls that pile up during one Redis round trip together, in one pipeline.

Under a crowd, dozens of requests of one process wait on Redis at once; each paying its own
round trip costs more than the script itself (on two shared cores, a round trip under gevent is
worth several hundred microseconds of CPU). The first caller leads: it sends whatever is
pending, then hands the lead to the first caller that arrived meanwhile. A lone caller goes
straight through. Each script still runs atomically on its own; only the trip is shared.
"""
from __future__ import annotations

import threading
from typing import Any, Sequence

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


class _Call:
    def __init__(self, keys: Sequence[Any], args: Sequence[Any]) -> None:
        self.keys, self.args = keys, args
        self.done = threading.Event()
        self.lead = False
        self.result: Any = None

    def outcome(self) -> Any:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


class Coalesced:
    """A registered script whose concurrent calls share round trips (plain Redis only)."""

    def __init__(self, client: redis.Redis, script: Script) -> None:
        self.client = client
        self.script = script
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._busy = False

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        call = _Call(keys, args)
        with self._lock:
            self._pending.append(call)
            lead, self._busy = not self._busy, True
        if not lead:
            call.done.wait()
            if not call.lead:
                return call.outcome()
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            self._send(batch)
        finally:
            with self._lock:
                if self._pending:
                    successor = self._pending[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._busy = False
        return call.outcome()

    def _send(self, batch: list[_Call]) -> None:
        try:
            if len(batch) == 1:
                results = [self.script(keys=batch[0].keys, args=batch[0].args)]
            else:
                results = self._pipeline(batch)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it, then go on
            for call in batch:
                call.result = exc
                call.done.set()
            raise
        for call, result in zip(batch, results):
            call.result = result
            call.done.set()

    def _pipeline(self, batch: list[_Call], reload: bool = True) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(self.script.sha, len(call.keys), *call.keys, *call.args)
        results = pipe.execute(raise_on_error=False)
        missed = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if reload and missed:
            # Redis restarted or flushed its scripts. Re-send only the calls that did not run:
            # the others' scripts did (a reserve), and running them again would answer
            # already_issued to a user whose first call reserved.
            self.client.script_load(self.script.script)
            again = self._pipeline([batch[i] for i in missed], reload=False)
            for i, result in zip(missed, again):
                results[i] = result
        return results


def coalesce(client: redis.Redis, script: Script) -> Coalesced | Script:
    """Wrap a script for shared round trips; a cluster client keeps the script as it is."""
    return Coalesced(client, script) if isinstance(client, redis.Redis) else script
