"""A full disk is answered, not an outage: status, check and a restart all still work.

On a real (tmpfs) file system of its own: the daemon stores a study, is SIGKILLed (its
job store's write-ahead log left unclean), the disk is filled by someone else, and then
``rgcds status`` lists the study, ``rgcds check`` (the unit's ExecStartPre) warns but passes,
the daemon starts, answers C-ECHO and refuses C-STORE with 0xA700 from its first
association, and takes instances again once space is freed, with its reserve re-created.
Needs root (mount); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgcds.dicom import Peer, store_files
from rgcds.results.testing import make_mr_series
from rgcds.store.reserve import reserve_path
from tests.adversarial.conftest import (
    AET,
    SCANNER,
    answers_echo,
    free_port,
    saved_files,
    wait_for,
    write_serve_config,
)

_SERVE = (
    "import sys; from pathlib import Path; from rgcds.config import load_settings; "
    "from rgcds.service import Daemon; Daemon(load_settings(Path(sys.argv[1]))).run_forever()"
)
MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "someone-elses.log"
    block = bytes(MiB)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (MiB, 65536, 4096, 512, 1):  # down to the last bytes
            try:
                while True:
                    os.write(fd, block[:size])
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rgcds.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("operator_looks_first", [True, False])
def test_full_disk_status_check_and_restart(
    small_disk: Path, tmp_path: Path, operator_looks_first: bool
) -> None:
    port = free_port()
    root = small_disk / "rgcds"
    config = write_serve_config(
        tmp_path / "rgcds.toml", root, port,
        '[trigger]\nstable_seconds = 3600\npoll_seconds = 0.2\n',
        min_free_bytes=2 * MiB, storage=f"reserve_bytes = {6 * MiB}\n",
    )
    series = make_mr_series(slices=4, rows=32, cols=32)
    files = saved_files(series, tmp_path)
    target = Peer("127.0.0.1", port, AET, calling_ae_title=SCANNER, timeout=5.0)

    def up() -> bool:
        return answers_echo(port)

    def serve() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", _SERVE, str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = serve()
    try:
        assert wait_for(up, timeout=60), "the daemon did not start"
        assert reserve_path(root).stat().st_size == 6 * MiB
        assert [r.status for r in store_files(target, files[:3])] == [0, 0, 0]
    finally:
        proc.kill()  # unclean: the job store's write-ahead log stays behind
        proc.wait(timeout=30)
    filler = _fill(small_disk)
    assert os.statvfs(small_disk).f_bavail == 0

    if operator_looks_first:  # else systemd restarts the daemon at once
        status = _cli("status", "--config", str(config), "--json")
        assert status.returncode == 0, status.stderr
        (row,) = json.loads(status.stdout)
        assert row["study_instance_uid"] == str(series[0].StudyInstanceUID)
        assert row["instances"] == 3

        check = _cli("check", "--config", str(config), "--offline")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "WARN" in check.stdout and "0xA700" in check.stdout

    proc = serve()
    try:
        assert wait_for(up, timeout=60), "the daemon did not start on a full disk"
        (refused,) = store_files(target, files[3:])
        assert refused.status == 0xA700  # out of resources, and the daemon lives on
        assert up()
        filler.unlink()  # the operator frees space
        assert wait_for(lambda: reserve_path(root).exists(), timeout=30)
        (stored,) = store_files(target, files[3:])
        assert stored.status == 0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
