"""Prefect's ephemeral API server, ended when the process that started it dies.

Prefect 3.9 runs its ephemeral API (the daemon's ``embedded`` processing mode) as a
``python -m uvicorn`` subprocess and stops it at exit. A SIGKILL (or OOM kill) of the
daemon skips that, and the server lived on as an orphan holding its port and its SQLite
database. :func:`rgcds.prefect_env.tie_ephemeral_server` starts the server through this
module instead: it watches its parent (a thread polling ``getppid``; a re-parented process
has lost it) and then stops uvicorn with SIGTERM (its graceful shutdown), and exits hard
if that takes longer than :data:`GRACE_SECONDS`. Everything else is uvicorn's ``__main__``
with Prefect's arguments unchanged.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

POLL_SECONDS = 0.5
GRACE_SECONDS = 10.0


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os._exit(1)


def main() -> None:
    """Run uvicorn with this process's arguments while the parent lives."""
    threading.Thread(target=_watch, args=(os.getppid(),), name="parent-watch",
                     daemon=True).start()
    sys.argv = ["uvicorn", *sys.argv[1:]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
