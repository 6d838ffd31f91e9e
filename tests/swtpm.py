"""Start and stop Debian's ``swtpm`` for tests (a real software TPM 2.0).

tcti-swtpm always uses control port = command port + 1, so we look for a free
adjacent pair, start swtpm on loopback with ``not-need-init,startup-clear``,
poll the control and then the command port until both accept a connection
(swtpm opens them one after the other; a connect-and-close probe does not
disturb the one-client-at-a-time command socket), and retry with new ports if
swtpm exits early. See ../shared/research/quotes-tpm.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Swtpm", "SwtpmUnavailable"]


class SwtpmUnavailable(RuntimeError):
    """swtpm is not installed or would not start."""


def _free_adjacent_ports() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return int(port)
    raise SwtpmUnavailable("no free adjacent port pair on 127.0.0.1")


class Swtpm:
    """One swtpm process with its own state directory.

    ``restart()`` kills the process and starts a new one on the same state, like a
    power cycle (resetCount moves, NV contents survive).
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        if shutil.which("swtpm") is None:
            raise SwtpmUnavailable("swtpm is not installed (apt-get install swtpm swtpm-tools)")
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="trustedge-swtpm-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self) -> Swtpm:
        last = ""
        for _ in range(10):
            self.port = _free_adjacent_ports()
            cmd = [
                "swtpm", "socket", "--tpm2",
                "--tpmstate", f"dir={self.state_dir}",
                "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                "--flags", "not-need-init,startup-clear",
                "--log", f"file={self.state_dir}/swtpm.log,level=1",
            ]  # fmt: skip
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = (self.proc.stderr.read() if self.proc.stderr else b"").decode()
                    break
                if self._listening(self.port + 1) and self._listening(self.port):
                    return self
                time.sleep(0.01)
            self.stop()
        raise SwtpmUnavailable(f"swtpm did not start: {last.strip()}")

    @staticmethod
    def _listening(port: int) -> bool:
        # swtpm may open its control socket before its command socket. A bare
        # connect-and-close is harmless: swtpm serves the next connection as usual.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> Swtpm:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """Environment for tpm2-tools run against this swtpm."""
        env = dict(os.environ)
        env["TPM2TOOLS_TCTI"] = self.tcti
        env["TSS2_LOG"] = "all+none"
        return env
