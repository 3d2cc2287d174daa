"""Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4: no websocket).

Opens one page, records every console message, script exception, log entry and network
request, evaluates expressions in the page and takes a screenshot. Every process it starts it
stops; every wait has a deadline.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
    "--window-size=1200,900",
)
DEADLINE_SECONDS = 30.0


def chromium_binary() -> str | None:
    """Return Debian's chromium (or another Chrome) on the PATH, if any."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@dataclass
class Seen:
    """What the page did: console messages and errors, and the URLs it requested."""

    console: list[dict[str, Any]] = field(default_factory=list)  # {"level", "text"}
    requests: list[str] = field(default_factory=list)


class Browser:
    """One headless Chromium with one page, spoken to over its DevTools pipe."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_child, self._out = os.pipe()  # we write commands; it reads fd 3
        self._in, from_child = os.pipe()  # it writes fd 4; we read replies and events

        def wire() -> None:  # in the child: the pipe's ends at the fds Chromium expects
            # Out of the way first, so that neither end is overwritten by the other's dup2.
            reads, writes = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child))
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=wire,  # kept open past the child's close_fds
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._ids = 0
        self.seen = Seen()
        self.session = ""

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.process.poll() is None:
                self._send("Browser.close", session=False)
                self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired, TimeoutError):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._out)
            os.close(self._in)
            shutil.rmtree(self.profile, ignore_errors=True)

    def _send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> int:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        return self._ids

    def _next(self, deadline: float) -> dict[str, Any]:
        """Return the next message from the browser, recording events on the way."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        self._record(message)
        return message

    def _record(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
            self.seen.console.append({"level": params["type"], "text": text})
        elif method == "Runtime.exceptionThrown":
            self.seen.console.append({"level": "error", "text": json.dumps(params["exceptionDetails"])})
        elif method == "Log.entryAdded":
            self.seen.console.append({"level": params["entry"]["level"], "text": params["entry"]["text"]})
        elif method == "Network.requestWillBeSent":
            self.seen.requests.append(params["request"]["url"])

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        """Send a command and return its result (raising on a protocol error)."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            message = self._next(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def wait_for(self, event: str) -> None:
        """Wait for an event of the page (e.g. Page.loadEventFired)."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while self._next(deadline).get("method") != event:
            continue

    def open(self, url: str, width: int = 1200) -> None:
        """Attach to a new page as wide as width, listen to everything it does, load url, wait."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")
        self.resize(width, 900)
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Return the value of a JavaScript expression in the page."""
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"][
            "value"
        ]

    def resize(self, width: int, height: int) -> None:
        """Set the viewport in CSS pixels (under 700 wide, as a phone)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700},
        )

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the whole page at the viewport's width."""
        width = int(self.evaluate("window.innerWidth"))
        self.resize(width, int(self.evaluate("document.documentElement.scrollHeight")))
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
