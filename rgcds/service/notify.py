"""systemd notification protocol (``sd_notify``): READY, STATUS, WATCHDOG, STOPPING.

Implements the documented datagram protocol directly (``$NOTIFY_SOCKET``), so nothing
extra needs installing. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import os
import socket

import structlog

logger = structlog.get_logger(__name__)


class SystemdNotifier:
    """Send state changes to systemd when run under ``Type=notify``."""

    def __init__(self, socket_path: str | None = None) -> None:
        self._address = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]  # abstract namespace

    @property
    def enabled(self) -> bool:
        """Whether a systemd notification socket is configured."""
        return bool(self._address)

    def watchdog_interval(self) -> float | None:
        """Half of ``WATCHDOG_USEC`` in seconds (how often to ping), or ``None``."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec or not usec.isdigit():
            return None
        pid = os.environ.get("WATCHDOG_PID")
        if pid and pid.isdigit() and int(pid) != os.getpid():
            return None
        return int(usec) / 2_000_000

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines; returns whether the message was sent."""
        if not self._address:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            logger.warning("systemd notification failed", error=str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        """Tell systemd the service is ready."""
        return self.notify(ready=1, status=status)

    def status(self, status: str) -> bool:
        """Update the free-text status line ``systemctl status`` shows."""
        return self.notify(status=status)

    def watchdog(self) -> bool:
        """Keep-alive ping for ``WatchdogSec``."""
        return self.notify(watchdog=1)

    def stopping(self) -> bool:
        """Tell systemd the service is shutting down."""
        return self.notify(stopping=1, status="stopping")


__all__ = ["SystemdNotifier"]
