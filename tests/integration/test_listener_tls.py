"""DICOM TLS on the listener: a real TLS 1.2+ association with throwaway certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rgcds.config import ListenerSettings, Settings, StorageSettings, TlsSettings
from rgcds.dicom import Peer, client_ssl_context, echo, server_ssl_context
from rgcds.exceptions import ConfigError, TransientExportError
from rgcds.service import Daemon

AET = "RGCDS"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("rgcds test CA", ca_key, "rgcds test CA", ca_key, ca=True)
    _write(d / "ca.pem", ca, None)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(d / f"{name}.pem", _cert(name, key, "rgcds test CA", ca_key, server=server), key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    _write(d / "rogue.pem", _cert("rogue", rogue_key, "rogue", rogue_key), rogue_key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem",
               d / "client.key", d / "rogue.pem", d / "rogue.key")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_daemon(tmp_path: Path, pki: Pki) -> Iterator[Daemon]:
    settings = Settings(
        listener=ListenerSettings(
            ae_title=AET, host="127.0.0.1", allowed_calling_aets=["SCANNER1"],
            acse_timeout=5, dimse_timeout=5, network_timeout=5,
            tls=TlsSettings(enabled=True, certificate=pki.server_cert,
                            private_key=pki.server_key, ca_certificates=pki.ca,
                            require_client_certificate=True),
        ),
        storage=StorageSettings(root=tmp_path / "root", min_free_bytes=0),
    )
    d = Daemon(settings, port=_port())
    d.start()
    yield d
    d.stop(timeout=2.0)


def _peer(d: Daemon, ctx: ssl.SSLContext) -> Peer:
    return Peer("127.0.0.1", d.port, AET, calling_ae_title="SCANNER1", ssl_context=ctx,
                server_hostname="localhost", timeout=5.0)


def test_server_context_is_tls12_or_newer(pki: Pki) -> None:
    ctx = server_ssl_context(TlsSettings(enabled=True, certificate=pki.server_cert,
                                         private_key=pki.server_key, ca_certificates=pki.ca,
                                         require_client_certificate=True))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_misconfigured_tls_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="certificate"):
        server_ssl_context(TlsSettings(enabled=True))
    with pytest.raises(ConfigError, match="ca_certificates"):
        server_ssl_context(TlsSettings(enabled=True, certificate=pki.server_cert,
                                       private_key=pki.server_key,
                                       require_client_certificate=True))


def test_tls_echo_with_trusted_client_certificate(tls_daemon: Daemon, pki: Pki) -> None:
    ctx = client_ssl_context(TlsSettings(enabled=True, certificate=pki.client_cert,
                                         private_key=pki.client_key, ca_certificates=pki.ca))
    assert echo(_peer(tls_daemon, ctx)) == 0


@pytest.mark.parametrize("who", ["none", "rogue"])
def test_tls_refused_without_trusted_client_certificate(
    tls_daemon: Daemon, pki: Pki, who: str
) -> None:
    cert = {"none": None, "rogue": pki.rogue_cert}[who]
    key = {"none": None, "rogue": pki.rogue_key}[who]
    ctx = client_ssl_context(TlsSettings(enabled=True, certificate=cert, private_key=key,
                                         ca_certificates=pki.ca))
    with pytest.raises(TransientExportError):
        echo(_peer(tls_daemon, ctx))
    # ...and the listener keeps serving trusted peers.
    good = client_ssl_context(TlsSettings(enabled=True, certificate=pki.client_cert,
                                          private_key=pki.client_key, ca_certificates=pki.ca))
    assert echo(_peer(tls_daemon, good)) == 0


def test_plain_tcp_peer_cannot_associate(tls_daemon: Daemon) -> None:
    plain = Peer("127.0.0.1", tls_daemon.port, AET, calling_ae_title="SCANNER1", timeout=3.0)
    with pytest.raises(TransientExportError):
        echo(plain)


@pytest.mark.dcmtk
def test_tls_echo_dcmtk(tls_daemon: Daemon, pki: Pki) -> None:
    r = subprocess.run(
        ["echoscu", "+tls", str(pki.client_key), str(pki.client_cert), "+cf", str(pki.ca),
         "-aet", "SCANNER1", "-aec", AET, "127.0.0.1", str(tls_daemon.port)],
        capture_output=True, text=True, timeout=30)
    if "unrecognized option" in r.stderr or "Unknown option" in r.stderr:
        pytest.skip("this dcmtk is built without OpenSSL")
    assert r.returncode == 0, r.stderr
