"""The OHIF v3 viewer on loopback, in front of a private Orthanc, as a reading room runs it.

:func:`ohif_server` serves OHIF's prebuilt ``dist`` (``deploy/viewer/fetch_ohif.py``, which
``make viewer``, ``make demo`` and ``make test`` run) and passes ``/dicom-web`` and ``/wado``
through to an Orthanc with its DICOMweb plugin, so that the viewer and the PACS share one
origin (the viewer's usual deployment behind a reverse proxy). OHIF's own ``app-config.js``
is replaced by one whose only data source is that Orthanc. Standard library only; the demo
(``rgcds demo --pacs``) and the viewer system test use it.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OHIF_DIST = Path("build") / "ohif" / "dist"
"""Where ``make viewer`` unpacks OHIF, relative to the checkout (the demo's working folder)."""

APP_CONFIG = b"""window.config = {
  routerBasename: '/', extensions: [], modes: [], showStudyList: true,
  showWarningMessageForCrossOrigin: false, showCPUFallbackMessage: false,
  showLoadingIndicator: false, investigationalUseDialog: { option: 'never' },
  defaultDataSourceName: 'pacs',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'pacs',
    configuration: {
      friendlyName: 'rgcds PACS (Orthanc)', name: 'orthanc',
      wadoUriRoot: '/wado', qidoRoot: '/dicom-web', wadoRoot: '/dicom-web',
      qidoSupportsIncludeField: false, supportsReject: false,
      imageRendering: 'wadors', thumbnailRendering: 'wadors', enableStudyLazyLoad: true,
      supportsFuzzyMatching: false, supportsWildcard: true,
      omitQuotationForMultipartRequest: true, bulkDataURI: { enabled: true },
    },
  }],
};
"""

class _Handler(http.server.SimpleHTTPRequestHandler):
    pacs_url = ""
    dist = OHIF_DIST

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(self.dist), **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def end_headers(self) -> None:
        # OHIF's cross-origin isolation (SharedArrayBuffer for its volume loaders).
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(("/dicom-web", "/wado")):
            # Host is passed on so that Orthanc writes BulkDataURIs on this origin.
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "host")}
            request = urllib.request.Request(  # noqa: S310 - the configured Orthanc
                self.pacs_url + self.path, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    self._send(response.status, response.read(), response.headers["Content-Type"])
            except urllib.error.HTTPError as error:
                self._send(error.code, b"", None)
            return
        if path == "/app-config.js":
            self._send(200, APP_CONFIG, "application/javascript")
            return
        if not (self.dist / path.lstrip("/")).is_file():
            self.path = "/index.html"  # the viewer's client-side routes
        super().do_GET()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextmanager
def ohif_server(pacs_url: str, dist: Path = OHIF_DIST, port: int = 0) -> Iterator[str]:
    """OHIF (its ``dist`` folder) on loopback ``port`` (0: a free one) in front of the
    Orthanc at ``pacs_url``; yields its URL."""
    if not (dist / "index.html").is_file():
        raise FileNotFoundError(
            f"OHIF is not unpacked in {dist}: run `make viewer` (deploy/viewer/fetch_ohif.py)."
        )
    handler = type("Handler", (_Handler,), {"pacs_url": pacs_url.rstrip("/"), "dist": dist})
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
