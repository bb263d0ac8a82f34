"""``rgcds check --config PATH [--offline] [--json]``: is this installation ready to run?

Checks, one OK/FAIL/SKIP/WARN line each with the reason (WARN: the daemon starts and
says so itself, e.g. a full disk it answers with 0xA700):

* ``config``: the file (and ``RGCDS_*`` variables) validate;
* ``storage``: ``storage.root`` exists or can be created, and is writable (a probe file is
  written, fsynced and deleted; directories the check created are removed again);
* ``free space``: above ``storage.min_free_bytes``;
* ``job store``: the SQLite job store opens (a throw-away probe database when none exists
  yet, so that the check creates nothing that lasts);
* ``models``: the model registry's folder has models; then one ``model ID`` line per model
  folder (card schema and the weights' sha256);
* ``listener TLS`` (when ``[listener.tls]`` is enabled) and ``destination NAME TLS`` (when
  a destination's is): every configured file exists and is readable, the certificate and
  the private key load and match, and the CA file loads; checked with ``--offline`` too;
* ``destination NAME``: a C-ECHO (with the destination's TLS) answered with Success;
  skipped with ``--offline``.

The exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

from rgcds.commands import add_config_argument, settings_and_logging
from rgcds.config import DestinationSettings, Settings, StorageSettings, TlsSettings
from rgcds.dicom.tls import client_ssl_context, server_ssl_context
from rgcds.exceptions import RgcdsError
from rgcds.store.jobs import JOB_STORE_NAME, JobStore, job_store_path
from rgcds.store.records import JobState
from rgcds.store.reserve import open_job_store, reserve_path

NAME = "check"
HELP = ("Check the configuration, storage, models and destinations (C-ECHO); "
        "exit 1 when anything is wrong.")

OK, FAIL, SKIP, WARN = "OK", "FAIL", "SKIP", "WARN"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: ``status`` OK, FAIL, SKIP or WARN; ``detail`` says why."""

    name: str
    status: str
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the check did not fail."""
        return self.status != FAIL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--offline", action="store_true", help="do not contact destinations (no C-ECHO)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="C-ECHO timeout per destination (default 10)")


# -- storage ----------------------------------------------------------------------------


def _create_dirs(root: Path) -> list[Path]:
    """Create ``root`` and missing parents; return those created, outermost first."""
    missing: list[Path] = []
    p = root
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    created: list[Path] = []
    for d in reversed(missing):
        d.mkdir()
        created.append(d)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


def _probe_write(root: Path) -> None:
    probe = root / f".rgcds-check-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"rgcds storage probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        probe.unlink(missing_ok=True)


def _probe_job_store(root: Path) -> str:
    path = job_store_path(root)
    if path.exists():
        with open_job_store(root) as store:  # a full disk: releases the reserve
            queued = len(store.jobs([JobState.QUEUED]))
            failed = len(store.jobs([JobState.FAILED]))
            studies = len(store.study_summaries())
        return f"{path} opens: {studies} studies, {queued} queued, {failed} failed"
    probe = root / f".rgcds-check-{os.getpid()}-{uuid.uuid4().hex}-{JOB_STORE_NAME}"
    try:
        with JobStore(probe) as store:
            store.jobs()
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{probe}{suffix}").unlink(missing_ok=True)
    return f"{path} does not exist yet; a test database opened in its folder"


def _job_store_result(root: Path) -> CheckResult:
    try:
        return CheckResult("job store", OK, _probe_job_store(root))
    except RgcdsError as exc:
        return CheckResult("job store", FAIL, str(exc))


def check_storage(storage: StorageSettings) -> list[CheckResult]:
    """Check ``storage.root``: creatable, writable (fsync), free space, job store opens."""
    root = storage.root
    if root.exists() and not root.is_dir():
        return [CheckResult("storage", FAIL, f"storage.root {root} exists but is not a folder.")]
    created: list[Path] = []
    try:
        try:
            created = _create_dirs(root)
        except OSError as exc:
            return [CheckResult(
                "storage", FAIL,
                f"storage.root {root} does not exist and cannot be created: "
                f"{exc.strerror or exc}.",
            )]
        try:
            _probe_write(root)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk is not an outage
                return [CheckResult(
                    "storage", WARN,
                    f"storage.root {root} is full ({exc.strerror}): the daemon starts, answers "
                    "C-ECHO and refuses instances with 0xA700 (out of resources) until space "
                    "is freed.",
                ), _job_store_result(root)]
            return [CheckResult(
                "storage", FAIL,
                f"storage.root {root} is not writable: {exc.strerror or exc}.",
            )]
        note = " (it does not exist yet and can be created)" if created else ""
        results = [CheckResult("storage", OK, f"{root} is writable{note}")]
        free = shutil.disk_usage(root).free
        # Without its reserve (released on a full disk) the daemon holds its size back.
        held = storage.reserve_bytes if not reserve_path(root).exists() else 0
        if free - held < storage.min_free_bytes:
            released = f" (of which {held} are kept for the disk reserve)" if held else ""
            results.append(CheckResult(
                "free space", WARN,
                f"only {free} bytes are free under {root}{released}, below "
                f"storage.min_free_bytes={storage.min_free_bytes}: the daemon refuses "
                "instances with 0xA700 (out of resources) until space is freed; free space or "
                "lower it.",
            ))
        else:
            results.append(CheckResult(
                "free space", OK,
                f"{free} bytes free (storage.min_free_bytes={storage.min_free_bytes})",
            ))
        results.append(_job_store_result(root))
        return results
    finally:
        _remove_dirs(created)


# -- models -----------------------------------------------------------------------------


def check_models(settings: Settings) -> list[CheckResult]:
    """Verify every model folder (card schema, sha256) with the inference model registry."""
    try:
        from rgcds.inference import ModelRegistry
    except Exception as exc:  # the registry is optional at this level; say why it is missing
        return [CheckResult(
            "models", FAIL,
            f"the model registry is unavailable ({type(exc).__name__}: {exc}); "
            "reinstall rgcds with its dependencies.",
        )]
    registry = ModelRegistry(settings.inference.models_root)
    try:
        verified = registry.verify()
    except Exception as exc:
        return [CheckResult("models", FAIL, str(exc) or type(exc).__name__)]
    if not verified:
        return [CheckResult(
            "models", FAIL,
            f"no model folders (with a model.yaml) in {registry.root}; install the models "
            "or set [inference] models_root.",
        )]
    results = [CheckResult("models", OK, f"{len(verified)} model folder(s) in {registry.root}")]
    for r in verified:
        results.append(CheckResult(f"model {r.model_id}", OK if r.ok else FAIL, r.message))
    return results


# -- destinations -----------------------------------------------------------------------


def check_destination(
    destination: DestinationSettings, calling_ae_title: str, timeout: float = 10.0
) -> CheckResult:
    """C-ECHO one destination (with its TLS settings); OK only on status Success."""
    from rgcds.dicom import Peer, client_ssl_context, echo

    name = f"destination {destination.name}"
    where = f"{destination.ae_title}@{destination.host}:{destination.port}"
    try:
        context = client_ssl_context(destination.tls) if destination.tls.enabled else None
        peer = Peer(
            destination.host, destination.port, destination.ae_title,
            calling_ae_title=destination.calling_ae_title or calling_ae_title,
            ssl_context=context, timeout=timeout,
        )
        status = echo(peer)
    except RgcdsError as exc:
        return CheckResult(name, FAIL, f"C-ECHO to {where} failed: {exc}")
    except (OSError, ValueError, RuntimeError) as exc:
        return CheckResult(name, FAIL, f"C-ECHO to {where} failed: {type(exc).__name__}: {exc}")
    tls = " over TLS" if context is not None else ""
    if status != 0:
        return CheckResult(name, FAIL, f"{where} answered the C-ECHO with status 0x{status:04X}")
    return CheckResult(name, OK, f"{where} answered the C-ECHO{tls}")


# -- TLS --------------------------------------------------------------------------------


def check_tls(name: str, where: str, tls: TlsSettings, *, server: bool) -> CheckResult:
    """Check one TLS table: files present and readable, certificate and key match, CA loads.

    ``where`` is the table's name in the configuration (``listener.tls``) for the messages;
    ``server`` builds the listener's context, else a destination's (client) context.
    """
    files = {"certificate": tls.certificate, "private_key": tls.private_key,
             "ca_certificates": tls.ca_certificates}
    for key, path in files.items():
        if path is None:
            continue
        if not path.exists():
            return CheckResult(name, FAIL, f"{where}.{key} {path} does not exist.")
        if not path.is_file():
            return CheckResult(name, FAIL, f"{where}.{key} {path} is not a file.")
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as exc:
            return CheckResult(name, FAIL, f"{where}.{key} {path} cannot be read "
                               f"({exc.strerror or exc}); check its owner and mode.")
    if (tls.certificate is None) != (tls.private_key is None):
        return CheckResult(name, FAIL, f"{where} sets only one of 'certificate' and "
                           "'private_key'; set both or neither.")
    if tls.certificate is not None and tls.private_key is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                str(tls.certificate), str(tls.private_key))
        except ssl.SSLError as exc:
            why = ("the private key does not belong to the certificate"
                   if "mismatch" in str(exc).lower() else f"they do not load ({exc.reason or exc})")
            return CheckResult(name, FAIL, f"{where}: {tls.certificate} and "
                               f"{tls.private_key}: {why}.")
    if tls.ca_certificates is not None:
        try:
            ssl.create_default_context(cafile=str(tls.ca_certificates))
        except ssl.SSLError as exc:
            return CheckResult(name, FAIL, f"{where}.ca_certificates {tls.ca_certificates} "
                               f"holds no loadable CA certificate ({exc.reason or exc}).")
    try:
        (server_ssl_context if server else client_ssl_context)(tls)
    except RgcdsError as exc:
        return CheckResult(name, FAIL, str(exc))
    parts = [p for p in ("certificate and key match" if tls.certificate else "",
                         "CA loads" if tls.ca_certificates else "") if p]
    return CheckResult(name, OK, f"{where}: " + (", ".join(parts) or "system CAs"))


def run_checks(
    settings: Settings, config: Path | None, *, offline: bool = False, timeout: float = 10.0
) -> list[CheckResult]:
    """Run every check for already-validated ``settings`` (the file is ``config``)."""
    results = [CheckResult("config", OK, f"{config or 'the defaults'} is valid")]
    results += check_storage(settings.storage)
    results += check_models(settings)
    if settings.listener.tls.enabled:
        results.append(check_tls("listener TLS", "listener.tls", settings.listener.tls,
                                 server=True))
    for destination in settings.destinations:
        if destination.tls.enabled:
            results.append(check_tls(f"destination {destination.name} TLS",
                                     f"destinations.{destination.name}.tls", destination.tls,
                                     server=False))
        if offline:
            results.append(CheckResult(
                f"destination {destination.name}", SKIP, "no C-ECHO (--offline)"
            ))
        else:
            results.append(check_destination(destination, settings.listener.ae_title, timeout))
    return results


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    results = run_checks(settings, args.config, offline=args.offline, timeout=args.timeout)
    ok = all(r.ok for r in results)
    if args.json:
        print(json.dumps([
            {"check": r.name, "ok": r.ok, "status": r.status, "detail": r.detail}
            for r in results
        ]))
    else:
        for r in results:
            print(f"{r.status:4} {r.name}: {r.detail}")
        print(f"listener {settings.listener.ae_title}@{settings.listener.host}:"
              f"{settings.listener.port}, {len(settings.destinations)} destination(s)")
    return 0 if ok else 1


__all__ = [
    "CheckResult", "check_destination", "check_models", "check_storage", "check_tls",
    "run_checks",
]
