"""Nothing leaves the machine unasked: a whole study through ``rgcds serve``, every
outbound connection of the daemon's process tree recorded.

``rgcds serve`` runs under ``strace -f -e trace=connect,sendto,sendmsg,sendmmsg`` (the
daemon, the Prefect ephemeral API server it starts, and any other child), with the
environment asking for Prefect's telemetry (``PREFECT_SERVER_ANALYTICS_ENABLED=true``, no
``DO_NOT_TRACK``, no ``ORT_DISABLE_TELEMETRY``): rgcds must turn it off itself. dcmtk's
storescu sends a phantom study, the daemon processes it with the embedded Prefect flow
and delivers the results to a real Orthanc. Then:

* every AF_INET/AF_INET6 connect or addressed send goes to loopback (127.0.0.0/8, ::1, or
  the unspecified address, which reaches this host);
  AF_UNIX and AF_NETLINK (the kernel) are fine, any other family is not;
* no DNS lookup: nothing is sent to or connected on port 53, at any address;
* the daemon's output (its log and that of its children) has no telemetry line.

Where ptrace is not allowed (strace cannot attach), the same is checked with a Python audit
hook (``socket.connect``, ``socket.sendto``, ``socket.getaddrinfo``) installed through a
``sitecustomize`` on ``PYTHONPATH`` for the daemon's Python process tree, and the test says
so in its output.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rgcds.store import JobState, JobStore, job_store_path
from tests.conftest import OrthancServer, free_port, require_tool

pytestmark = [pytest.mark.slow, pytest.mark.orthanc, pytest.mark.dcmtk,
              pytest.mark.timeout(1500)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS = REPO_ROOT / "models"
TRACED = "connect,sendto,sendmsg,sendmmsg,execve"

_AUDIT_HOOK = '''
import os, sys
_LOG = os.environ.get("RGCDS_TEST_SOCKET_LOG")
def _rgcds_test_hook(event, args):
    if not _LOG or event not in ("socket.connect", "socket.sendto", "socket.getaddrinfo"):
        return
    try:
        if event == "socket.getaddrinfo":
            import traceback
            where = "|".join(f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[-9:-1])
            record = ["getaddrinfo", repr(args[0]), repr(args[1]), where]
        else:
            record = [event.split(".")[1], str(int(args[0].family)), repr(args[1])]
        with open(_LOG, "a") as f:
            f.write(str(os.getpid()) + "\\t" + "\\t".join(record) + "\\n")
    except Exception:
        pass
sys.addaudithook(_rgcds_test_hook)
'''


def _strace_works(tmp: Path) -> bool:
    strace = shutil.which("strace")
    if strace is None:
        return False
    probe = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(tmp / "probe.trace"), "true"],
        capture_output=True, timeout=60, check=False,
    )
    return probe.returncode == 0


@dataclass
class Violation:
    line: str
    why: str


_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_INET = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')


def _loopback(address: str) -> bool:
    """Loopback, or the unspecified address (a connect to it reaches this host)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def check_strace(lines: list[str]) -> tuple[list[Violation], dict[str, int]]:
    """The connections in an ``strace`` log that leave the machine or look a name up."""
    bad: list[Violation] = []
    seen: dict[str, int] = {}
    for line in lines:
        if not re.search(r"\b(connect|sendto|sendmsg|sendmmsg)\(", line):
            continue
        family = _FAMILY.search(line)
        if family is None:  # a send on a connected socket: its connect was checked
            continue
        fam = family.group(1)
        seen[fam] = seen.get(fam, 0) + 1
        if fam in ("AF_UNIX", "AF_NETLINK"):
            continue
        if fam == "AF_UNSPEC":  # connect(AF_UNSPEC) dissolves an association
            continue
        match = _INET.search(line) if fam == "AF_INET" else _INET6.search(line)
        if fam not in ("AF_INET", "AF_INET6") or match is None:
            bad.append(Violation(line, f"unexpected address family {fam}"))
            continue
        port, address = int(match.group(1)), match.group(2)
        if port == 53:
            bad.append(Violation(line, "a DNS lookup"))
        elif not _loopback(address):
            bad.append(Violation(line, f"a connection to {address}:{port}, off the machine"))
    return bad, seen


def check_audit(lines: list[str]) -> tuple[list[Violation], dict[str, int]]:
    """The same, from the audit hook's log (``pid, event, family, address``)."""
    import ast
    import socket

    bad: list[Violation] = []
    seen: dict[str, int] = {}
    for line in lines:
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 4:
            continue
        _pid, event, first, second = fields[:4]
        if event == "getaddrinfo":
            host = ast.literal_eval(first)
            host = host.decode() if isinstance(host, bytes) else host
            seen["getaddrinfo"] = seen.get("getaddrinfo", 0) + 1
            try:
                numeric = host is None or _loopback(str(host))
            except ValueError:
                numeric = host == "localhost"
            if not numeric:
                bad.append(Violation(line, f"a name lookup of {host!r}"))
            continue
        family = socket.AddressFamily(int(first)).name
        seen[family] = seen.get(family, 0) + 1
        if family in ("AF_UNIX", "AF_NETLINK"):
            continue
        address = ast.literal_eval(second)
        host, port = str(address[0]), int(address[1])
        try:
            local = _loopback(host)
        except ValueError:
            local = host == "localhost"
        if port == 53:
            bad.append(Violation(line, "a DNS lookup"))
        elif not local:
            bad.append(Violation(line, f"a connection to {host}:{port}, off the machine"))
    return bad, seen


def test_checkers_see_what_leaves() -> None:
    """The log readers themselves: loopback and Unix sockets pass, the rest does not."""
    good = [
        '9 connect(7, {sa_family=AF_INET, sin_port=htons(4200), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '9 connect(7, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '9 connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1',
        '9 sendto(7, "GET / HTTP/1.1"..., 100, 0, NULL, 0) = 100',
    ]
    bad = [
        '9 connect(7, {sa_family=AF_INET, sin_port=htons(443), '
        'sin_addr=inet_addr("104.16.1.1")}, 16) = -1 ENETUNREACH',
        '9 connect(7, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("127.0.0.53")}, 16) = 0',
        '9 sendto(7, "\\x12"..., 40, MSG_NOSIGNAL, {sa_family=AF_INET6, '
        'sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", '
        '&sin6_addr), sin6_scope_id=0}, 28) = 40',
    ]
    assert check_strace(good)[0] == []
    assert len(check_strace(bad)[0]) == 3
    assert check_audit(["1\tconnect\t2\t('127.0.0.1', 4200)",
                        "1\tgetaddrinfo\t'127.0.0.1'\t80"])[0] == []
    assert len(check_audit(["1\tgetaddrinfo\t'sens-o-matic.prefect.io'\t443",
                            "1\tconnect\t2\t('10.0.0.5', 104)"])[0]) == 2


@pytest.fixture
def traced_serve(
    orthanc: OrthancServer, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """``rgcds serve`` under strace (or the audit hook), delivering to Orthanc."""
    root = tmp_path / "storage"
    port = free_port()
    config = tmp_path / "rgcds.toml"
    config.write_text(f"""
[listener]
ae_title = "RGCDS"
host = "127.0.0.1"
port = {port}
allowed_calling_aets = ["SCANNER1"]

[storage]
root = "{root}"
min_free_bytes = 0

[inference]
models_root = "{MODELS}"

[trigger]
stable_seconds = 3
poll_seconds = 0.5

[metrics]
enabled = false

[export]
poll_seconds = 1
initial_backoff_seconds = 1

[logging]
level = "INFO"
format = "json"

[[destinations]]
name = "pacs"
ae_title = "{orthanc.aet}"
host = "127.0.0.1"
port = {orthanc.dicom_port}
""")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "OTEL_", "ORT_")) and k != "DO_NOT_TRACK"}
    # The operator's environment asks for telemetry: rgcds must turn it off itself.
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="true",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PYTHONUNBUFFERED="1",
    )
    command = [sys.executable, "-m", "rgcds.cli", "serve", "--config", str(config)]
    trace = tmp_path / "daemon.trace"
    if os.environ.get("RGCDS_TEST_CONNECT_TRACER", "strace") == "strace" and _strace_works(
        tmp_path
    ):
        mode = "strace"
        command = [str(shutil.which("strace")), "-f", "-qq", "-s", "96", "-e", f"trace={TRACED}",
                   "-e", "signal=none", "-o", str(trace), *command]
    else:
        mode = "audit-hook"
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(_AUDIT_HOOK)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        env["RGCDS_TEST_SOCKET_LOG"] = str(trace)
        trace.touch()
    print(f"recording outbound connections with {mode}")
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    info = {"proc": proc, "port": port, "root": root, "trace": trace, "log": log,
            "mode": mode}
    try:
        yield info
    finally:
        _stop_tree(proc, mode)


def _daemon_pid(proc: subprocess.Popen[bytes], mode: str) -> int:
    """The pid of ``rgcds serve`` (strace's child when traced)."""
    if mode != "strace":
        return proc.pid
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    try:
        pids = [int(p) for p in children.read_text().split()]
    except OSError:
        pids = []
    return pids[0] if pids else proc.pid


def _stop_tree(proc: subprocess.Popen[bytes], mode: str) -> None:
    """SIGTERM the daemon (as systemd would), then its whole session if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.kill(_daemon_pid(proc, mode), signal.SIGTERM)
        proc.wait(timeout=90)
        return
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_listening(info: dict[str, Any], timeout: float = 300) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if info["proc"].poll() is not None:
            pytest.fail("rgcds serve exited:\n" + info["log"].read_text(errors="replace")[-4000:])
        try:
            with socket.create_connection(("127.0.0.1", info["port"]), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail("rgcds serve did not listen within 300 s")


def test_a_study_through_serve_connects_to_loopback_only(
    traced_serve: dict[str, Any], orthanc: OrthancServer, phantom_study: Any
) -> None:
    info = traced_serve
    storescu = require_tool("storescu", "dcmtk")
    orthanc.clear()
    _wait_listening(info)
    sent = subprocess.run(
        [storescu, "-aet", "SCANNER1", "-aec", "RGCDS", "+sd", "+r", "127.0.0.1",
         str(info["port"]), str(phantom_study.series[0].directory.parent)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert sent.returncode == 0, sent.stderr

    state, reasons = None, []
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and state not in (JobState.DONE, JobState.FAILED):
        if info["proc"].poll() is not None:
            pytest.fail("rgcds serve exited:\n" + info["log"].read_text(errors="replace")[-4000:])
        time.sleep(3)
        db = job_store_path(info["root"])
        if not db.exists():
            continue
        jobs = JobStore(db)
        try:
            listed = jobs.jobs()
            state = listed[-1].state if listed else None
            reasons = [j.reason for j in listed]
        finally:
            jobs.close()
    _stop_tree(info["proc"], info["mode"])
    log_text = info["log"].read_text(errors="replace")
    assert state is JobState.DONE, (state, reasons, log_text[-4000:])
    assert any(orthanc.instance_tags(i)["Modality"] == "SR" for i in orthanc.instances())

    lines = info["trace"].read_text(errors="replace").splitlines()
    check = check_strace if info["mode"] == "strace" else check_audit
    bad, seen = check(lines)
    print(f"{info['mode']}: {len(lines)} records; addressed calls by family: "
          f"{json.dumps(seen, sort_keys=True)}")
    assert seen.get("AF_INET", 0) + seen.get("AF_INET6", 0) > 0, "nothing was recorded"
    assert not bad, "\n".join(f"{v.why}: {v.line}" for v in bad[:20])

    # No telemetry attempt, and nothing about it in any log of the process tree.
    telemetry = [line for line in log_text.splitlines() if "telemetry" in line.lower()]
    assert not telemetry, telemetry[:5]
    # The phantom's name does not reach the daemon's log (model ids may say "phantom").
    for part in phantom_study.patient_name.split("^"):
        assert part not in log_text
    assert phantom_study.patient_id not in log_text
