"""DICOM TLS (PS3.15 Annex B): SSL contexts for the listener and for SCUs, TLS 1.2 or newer."""

from __future__ import annotations

import ssl

from rgcds.config import TlsSettings
from rgcds.exceptions import ConfigError


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """Build the listener's SSL context from ``[listener.tls]``.

    Parameters
    ----------
    tls
        The TLS settings; ``certificate`` and ``private_key`` are required, and
        ``ca_certificates`` when ``require_client_certificate`` is set.

    Returns
    -------
    ssl.SSLContext
        A server context with ``minimum_version`` TLS 1.2. Client certificates are required
        when ``require_client_certificate`` is set, verified if presented when only
        ``ca_certificates`` is given, and not asked for otherwise.

    Raises
    ------
    ConfigError
        If a required file is not configured or cannot be loaded.
    """
    if tls.certificate is None or tls.private_key is None:
        raise ConfigError(
            "listener.tls is enabled but 'certificate' or 'private_key' is missing; "
            "set both to PEM files."
        )
    if tls.require_client_certificate and tls.ca_certificates is None:
        raise ConfigError(
            "listener.tls.require_client_certificate needs 'ca_certificates' (PEM file of "
            "the CAs that sign client certificates)."
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.private_key))
        if tls.ca_certificates is not None:
            ctx.load_verify_locations(cafile=str(tls.ca_certificates))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"The listener's TLS files cannot be loaded: {exc}.") from None
    if tls.require_client_certificate:
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif tls.ca_certificates is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """Build an SCU's SSL context (a destination's ``tls`` table).

    Parameters
    ----------
    tls
        ``ca_certificates`` verifies the peer (system CAs when unset); ``certificate`` and
        ``private_key`` are presented as the client certificate when both are set.

    Returns
    -------
    ssl.SSLContext
        A client context with ``minimum_version`` TLS 1.2 and host name checking.

    Raises
    ------
    ConfigError
        If a configured file cannot be loaded.
    """
    try:
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(tls.ca_certificates) if tls.ca_certificates else None,
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.certificate is not None and tls.private_key is not None:
            ctx.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.private_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"The TLS files of a destination cannot be loaded: {exc}.") from None
    return ctx


__all__ = ["client_ssl_context", "server_ssl_context"]
