"""Seeded mutation fuzzing of the listener: it answers C-ECHO after every case (issue 21)."""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import AET, SCANNER, StartDaemon, rss_bytes, wait_for
from tests.adversarial.fuzzing import PHI_MARKERS, Fuzzer

# pynetdicom's DUL thread dies on some undecodable command sets (its state machine's
# exceptions are not caught); the association then ends, which is what is tested here.
pytestmark = [pytest.mark.timeout(60),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")]

MIB = 1 << 20


@pytest.mark.parametrize("seed", [1, 2])
def test_listener_survives_mutated_pdus(
    start_daemon: StartDaemon, capfd: pytest.CaptureFixture[str], seed: int,
) -> None:
    d = start_daemon(max_instance_size=8 * MIB, max_pdu_size=65536)
    fuzzer = Fuzzer(d.port, SCANNER, AET, seed=seed)
    fuzzer.run(30)  # warm-up: threads, caches, first imports
    baseline = rss_bytes()
    fuzzer.run(150)
    assert fuzzer.echo_failures == []
    grown = rss_bytes() - baseline
    assert grown < 64 * MIB, f"memory grew by {grown / MIB:.0f} MiB over {fuzzer.cases} cases"
    scp = d.scp
    assert scp is not None
    # Every case's connection ends (the last ones may still be closing).
    assert wait_for(lambda: sum(scp.connection_counts().values()) == 0, 10.0), (
        scp.connection_counts())
    out, err = capfd.readouterr()
    for marker in PHI_MARKERS:
        assert marker not in out and marker not in err, f"PHI marker {marker} in the output"
