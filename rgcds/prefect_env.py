"""Prefect (and ONNX Runtime) without phone-home: nothing leaves the machine unasked.

Prefect 3.9 reaches out on its own in these places, each on by default; the variable
after each turns it off:

* the server's telemetry heartbeat (version, platform, a session id) to
  ``sens-o-matic.prefect.io``, sent by the embedded ephemeral API and by
  ``prefect server start`` (the ``Failed to send telemetry`` line of an offline host):
  ``PREFECT_SERVER_ANALYTICS_ENABLED=false``;
* the SDK's usage events (Amplitude), from every client: the daemon, workers, flow runs:
  ``DO_NOT_TRACK=1``;
* OpenTelemetry spans of flow and task runs:
  ``PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY=false``;
* process CPU and memory metrics of flow-run subprocesses, over OTLP to an endpoint derived
  from a Prefect Cloud API URL or ``OTEL_EXPORTER_OTLP_*``:
  ``PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS=false``;
* and, for any OpenTelemetry SDK in the environment: ``OTEL_SDK_DISABLED=true``.

ONNX Runtime 1.32 (the inference backend) sends its own usage telemetry on Linux too, to
``mobile.events.data.microsoft.com`` some seconds after a session is created (found by
``tests/system/test_no_phone_home.py``): ``ORT_DISABLE_TELEMETRY=1`` turns it off.

:func:`keep_prefect_offline` sets them in ``os.environ``, overriding whatever the operator's
environment says, so that the process and every subprocess it starts (Prefect's ephemeral
API server inherits ``os.environ``) stay quiet. ``rgcds`` calls it first thing, before
Prefect is imported; the daemon's processing slot calls it again. Processes rgcds does not
start (``prefect server start``, ``prefect worker start``) get the same variables from
their systemd units (``deploy/systemd``), and the flow runs a worker starts get them from
the deployment's job variables (``{"env": OFFLINE_ENVIRONMENT}``, see
``docs/operations.md``).

The Prefect API the daemon talks to is the operator's choice (``processing.prefect_api_url``,
``PREFECT_API_URL``): that connection is asked for, and is not changed here.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

#: The environment that turns off every outbound default of Prefect 3.9 and ONNX Runtime.
OFFLINE_ENVIRONMENT: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "OTEL_SDK_DISABLED": "true",
    "ORT_DISABLE_TELEMETRY": "1",
}


def keep_prefect_offline(environ: MutableMapping[str, str] | None = None) -> None:
    """Set :data:`OFFLINE_ENVIRONMENT` in ``environ`` (``os.environ`` by default).

    Call it before Prefect or ONNX Runtime is imported: Prefect reads its settings when it
    is imported and sends its first SDK event then. Values already there are overridden.
    """
    target = os.environ if environ is None else environ
    target.update(OFFLINE_ENVIRONMENT)


class _TiedSubprocess:
    """``subprocess`` as Prefect's server module sees it: uvicorn goes through
    :mod:`rgcds.prefect_child`; everything else is the real module."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:  # subprocess.Popen, by name
        argv = list(kwargs.pop("args", args[0] if args else []))
        if argv[1:3] == ["-m", "uvicorn"]:
            argv[1:3] = ["-m", "rgcds.prefect_child"]
        return self._real.Popen(argv, *args[1:], **kwargs)


def tie_ephemeral_server() -> None:
    """Make Prefect's ephemeral API server end with this process, even after a SIGKILL.

    The embedded processing mode's server is a subprocess Prefect stops at exit; a killed
    daemon left it running. Idempotent; call before the first flow run.
    """
    from prefect.server.api import server as prefect_server

    current = prefect_server.subprocess  # type: ignore[attr-defined]
    if not isinstance(current, _TiedSubprocess):
        prefect_server.subprocess = _TiedSubprocess(current)  # type: ignore[attr-defined,assignment]


__all__ = ["OFFLINE_ENVIRONMENT", "keep_prefect_offline", "tie_ephemeral_server"]
