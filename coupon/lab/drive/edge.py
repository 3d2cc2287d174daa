"""Run nginx with the repository's edge config as a child process, for tests and the bench."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from coupon.core.config import PROJECT_ROOT
from coupon.lab.drive.serve import free_port
from coupon.servers import owner

# The edge configuration lives with the deployment files; this module only runs it.
TEMPLATE = PROJECT_ROOT / "deploy" / "nginx.conf.template"
PLACEHOLDER = re.compile(r"\$\{(COUPON_EDGE_[A-Z_]+)\}")


def render(values: dict[str, str], template: str | None = None) -> str:
    """Fill in the template's ${COUPON_EDGE_*} names as the image's envsubst step does."""
    text = TEMPLATE.read_text() if template is None else template
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def nginx_binary() -> str | None:
    """Return the path of nginx (often in /usr/sbin, outside a user's PATH), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


class Nginx:
    """nginx in front of one upstream on a free loopback port; a context manager that stops it."""

    def __init__(self, upstream: str, rate: str = "20r/s", burst: int = 200) -> None:
        self.upstream = upstream
        self.rate, self.burst = rate, burst
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="coupon-edge-"))
        self.log_path = self.prefix / "nginx.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, binary: str) -> list[str]:
        """Return the command line: the rendered config, this instance's pid file, foreground."""
        config = self.prefix / "nginx.conf"
        values = {
            "COUPON_EDGE_LISTEN": f"127.0.0.1:{self.port}",
            "COUPON_EDGE_UPSTREAM": self.upstream,
            "COUPON_EDGE_TEMP": str(self.prefix / "temp"),
            "COUPON_EDGE_RATE": self.rate,
            "COUPON_EDGE_BURST": str(self.burst),
        }
        config.write_text(render(values))
        (self.prefix / "temp").mkdir(exist_ok=True)
        # As root, workers would switch to nobody, who cannot enter a private temp directory.
        user = "user root;" if os.geteuid() == 0 else ""
        globals_ = f"daemon off; pid {self.prefix / 'nginx.pid'}; {user}"
        return [binary, "-p", str(self.prefix), "-c", str(config), "-e", "stderr", "-g", globals_]

    def start(self, timeout: float = 15.0) -> Nginx:
        """Start nginx and wait until it answers HTTP, whatever the upstream says (or raise)."""
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx is not installed")
        with open(self.log_path, "ab") as log:
            self.process = owner.spawn(self.command(binary), stdout=log, stderr=subprocess.STDOUT)
        try:
            owner.wait_ready(self.process, self._answers, timeout, f"nginx on {self.url}")
        except BaseException as exc:
            exc.add_note(self.log_path.read_text()[-2000:])
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1):
                return True
        except urllib.error.HTTPError:  # nginx answered; the upstream may be down on purpose
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop nginx (fast shutdown: open connections are closed) and remove its files."""
        if self.process is not None:
            owner.stop(self.process, timeout=10)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
