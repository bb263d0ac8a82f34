"""``rgcds check``: storage, models and a real C-ECHO against a pynetdicom SCP on loopback."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from rgcds.commands import check
from rgcds.inference.testing import card_data

ECHO_AET = "ECHOSCP"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def echo_scp() -> Iterator[int]:
    """A real Verification SCP on a free loopback port."""
    ae = AE(ae_title=ECHO_AET)
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    assert server is not None
    try:
        yield port
    finally:
        server.shutdown()


def _models(root: Path, *names: str) -> Path:
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(name.encode())
        (folder / "model.yaml").write_text(
            yaml.safe_dump(card_data(folder / "model.onnx", model_id=name))
        )
    return root


def _config(
    tmp_path: Path,
    *,
    storage_root: Path | None = None,
    min_free: int = 0,
    models_root: Path | None = None,
    destinations: tuple[tuple[str, int], ...] = (),
) -> Path:
    storage_root = storage_root or tmp_path / "store"
    if models_root is None:
        models_root = tmp_path / "models"
        if not models_root.exists():
            _models(models_root, "tiny-seg")
    lines = [
        "[storage]", f'root = "{storage_root}"', f"min_free_bytes = {min_free}",
        "[inference]", f'models_root = "{models_root}"',
    ]
    for name, port in destinations:
        lines += ["[[destinations]]", f'name = "{name}"', f'ae_title = "{ECHO_AET}"',
                  'host = "127.0.0.1"', f"port = {port}"]
    path = tmp_path / "rgcds.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(config: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-level", default="ERROR")
    parser.add_argument("--log-format", default="json")
    check.add_arguments(parser)
    return check.run(parser.parse_args(["--config", str(config), "--timeout", "5", *extra]))


def _rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    return {r["check"]: r for r in json.loads(capsys.readouterr().out)}


def test_all_ok_with_echo_scp(tmp_path: Path, echo_scp: int,
                              capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, destinations=(("pacs", echo_scp),))
    assert _run(config) == 0
    out = capsys.readouterr().out
    for line in ("OK   config:", "OK   storage:", "OK   free space:", "OK   job store:",
                 "OK   models:", "OK   model tiny-seg:", "OK   destination pacs:"):
        assert line in out, out
    assert "FAIL" not in out


def test_closed_port_fails(tmp_path: Path, echo_scp: int,
                           capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, destinations=(("pacs", echo_scp), ("gone", free_port())))
    assert _run(config, "--json") == 1
    rows = _rows(capsys)
    assert rows["destination pacs"]["ok"] is True
    gone = rows["destination gone"]
    assert gone["ok"] is False and gone["status"] == "FAIL"
    assert "C-ECHO" in gone["detail"] and "127.0.0.1" in gone["detail"]


def test_offline_skips_destinations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, destinations=(("gone", free_port()),))
    assert _run(config, "--offline") == 0
    assert "SKIP destination gone: no C-ECHO (--offline)" in capsys.readouterr().out


def test_too_little_free_space_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A low disk is answered with 0xA700 by a running daemon: ExecStartPre must not turn a
    # restart into an outage, so it is a warning, not a failure.
    config = _config(tmp_path, min_free=2**62)
    assert _run(config, "--offline", "--json") == 0
    rows = _rows(capsys)
    assert rows["storage"]["ok"] is True
    assert rows["free space"]["status"] == "WARN" and rows["free space"]["ok"] is True
    assert "storage.min_free_bytes" in rows["free space"]["detail"]
    assert "0xA700" in rows["free space"]["detail"]


def test_uncreatable_storage_root_fails(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = _config(tmp_path, storage_root=blocker / "root")
    assert _run(config, "--offline", "--json") == 1
    row = _rows(capsys)["storage"]
    assert row["ok"] is False and "cannot be created" in row["detail"]
    config = _config(tmp_path, storage_root=blocker)
    assert _run(config, "--offline", "--json") == 1
    assert "not a folder" in _rows(capsys)["storage"]["detail"]


def test_check_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "new" / "root"
    assert _run(_config(tmp_path, storage_root=root), "--offline") == 0
    assert "can be created" in capsys.readouterr().out
    assert not (tmp_path / "new").exists()
    root.mkdir(parents=True)
    assert _run(_config(tmp_path, storage_root=root), "--offline") == 0
    assert list(root.iterdir()) == []


def test_existing_job_store_is_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rgcds.store import JobStore, job_store_path

    root = tmp_path / "store"
    JobStore(job_store_path(root)).close()
    assert _run(_config(tmp_path, storage_root=root), "--offline", "--json") == 0
    assert "0 studies, 0 queued, 0 failed" in _rows(capsys)["job store"]["detail"]


def test_models_missing_or_corrupt_fail(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, models_root=tmp_path / "no-models")
    assert _run(config, "--offline", "--json") == 1
    assert _rows(capsys)["models"]["ok"] is False

    models = _models(tmp_path / "m2", "good", "bad")
    (models / "bad" / "model.onnx").write_bytes(b"tampered")
    config = _config(tmp_path, models_root=models)
    assert _run(config, "--offline", "--json") == 1
    rows = _rows(capsys)
    assert rows["model good"]["ok"] is True
    assert rows["model bad"]["ok"] is False and "sha256" in rows["model bad"]["detail"].lower()


def test_registry_unavailable_is_a_clear_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from rgcds.config import Settings

    monkeypatch.setitem(sys.modules, "rgcds.inference", None)
    [row] = check.check_models(Settings())
    assert row.status == "FAIL" and "model registry is unavailable" in row.detail


# -- TLS files (issue 21) ---------------------------------------------------------------------


def _self_signed(d: Path, name: str) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem, pkey = d / f"{name}.pem", d / f"{name}.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkey.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return pem, pkey


def test_tls_files_are_checked(tmp_path: Path) -> None:
    import os

    from rgcds.config import TlsSettings

    cert, key = _self_signed(tmp_path, "server")
    _, other_key = _self_signed(tmp_path, "other")
    empty_ca = tmp_path / "empty-ca.pem"
    empty_ca.write_text("")

    def result(**kw: Any) -> check.CheckResult:
        tls = TlsSettings(enabled=True, **kw)
        return check.check_tls("listener TLS", "listener.tls", tls, server=True)

    good = result(certificate=cert, private_key=key, ca_certificates=cert)
    assert good.status == check.OK, good
    missing = result(certificate=tmp_path / "nope.pem", private_key=key)
    assert missing.status == check.FAIL and "does not exist" in missing.detail
    mismatch = result(certificate=cert, private_key=other_key)
    assert mismatch.status == check.FAIL and "does not belong" in mismatch.detail
    bad_ca = result(certificate=cert, private_key=key, ca_certificates=empty_ca)
    assert bad_ca.status == check.FAIL and "ca_certificates" in bad_ca.detail
    no_key = result(certificate=cert)
    assert no_key.status == check.FAIL
    if os.geteuid() != 0:  # root reads any file
        key.chmod(0)
        try:
            unreadable = result(certificate=cert, private_key=key)
            assert unreadable.status == check.FAIL and "cannot be read" in unreadable.detail
        finally:
            key.chmod(0o600)


def test_check_reports_missing_listener_tls_files(tmp_path: Path) -> None:
    from rgcds.config import Settings

    settings = Settings.model_validate({
        "storage": {"root": str(tmp_path / "root"), "min_free_bytes": 0},
        "listener": {"tls": {"enabled": True, "certificate": str(tmp_path / "gone.pem"),
                             "private_key": str(tmp_path / "gone.key")}},
    })
    rows = {r.name: r for r in check.run_checks(settings, None, offline=True)}
    assert rows["listener TLS"].status == check.FAIL
    assert "gone.pem does not exist" in rows["listener TLS"].detail
