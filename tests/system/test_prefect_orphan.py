"""A SIGKILLed daemon leaves no Prefect ephemeral API server behind.

The embedded processing mode's first flow run starts Prefect's ephemeral server as a
subprocess (uvicorn); Prefect stops it at exit, which a SIGKILL skips.
:func:`rgcds.prefect_env.tie_ephemeral_server` starts it through :mod:`rgcds.prefect_child`,
which ends it when its parent is gone. Here a process runs one flow as the daemon's
processing slot does, is SIGKILLed, and its server must be gone within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_RUN_ONE_FLOW = """
from rgcds.prefect_env import keep_prefect_offline, tie_ephemeral_server
keep_prefect_offline()
tie_ephemeral_server()
from prefect import flow

@flow
def one() -> int:
    return 1

one()
print("FLOW DONE", flush=True)
import time
time.sleep(600)
"""


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), cmd))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ephemeral_server_ends_with_a_killed_daemon(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", _RUN_ONE_FLOW], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    servers: list[tuple[int, str]] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the flow run or the process' end
        assert "FLOW DONE" in line, "the flow did not run"
        servers = [c for c in _children(proc.pid) if "prefect.server.api.server" in c[1]]
        assert servers, "no ephemeral Prefect server was started"
        assert all("rgcds.prefect_child" in cmd for _, cmd in servers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid, _ in servers):
            time.sleep(0.2)
        left = [pid for pid, _ in servers if _alive(pid)]
        assert not left, f"Prefect server(s) {left} outlived the killed process"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid, _ in servers:  # never leave one behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
