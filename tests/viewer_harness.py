"""The OHIF v3 viewer, as a reading room runs it, in headless Chromium (issue 18).

* :class:`OhifServer` serves OHIF's prebuilt ``dist`` (``deploy/viewer/fetch_ohif.py``, which
  ``make test`` runs) on a free loopback port and passes ``/dicom-web`` and ``/wado`` through
  to an Orthanc with its DICOMweb plugin, so the viewer and the PACS share one origin (the
  viewer's default deployment behind a reverse proxy). OHIF's own ``app-config.js`` is
  replaced by one whose only data source is that Orthanc.
* :func:`open_viewer` starts Debian's Chromium through Playwright (no browser download),
  opens a study in OHIF's viewer route and waits until OHIF has made its display sets.
* :func:`viewer_state` reads what OHIF itself holds: ``window.services`` (display sets with
  their SOP class handler, the SR measurements OHIF parsed with their coordinates, the
  segmentations and their segments).

Skips with the reason when Chromium, Playwright, the DICOMweb plugin or the OHIF build is
missing.
"""

from __future__ import annotations

import http.server
import shutil
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
OHIF_DIST = ROOT / "build" / "ohif" / "dist"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

APP_CONFIG = b"""window.config = {
  routerBasename: '/', extensions: [], modes: [], showStudyList: true,
  showWarningMessageForCrossOrigin: false, showCPUFallbackMessage: false,
  showLoadingIndicator: false, investigationalUseDialog: { option: 'never' },
  defaultDataSourceName: 'pacs',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'pacs',
    configuration: {
      friendlyName: 'rgcds test PACS (Orthanc)', name: 'orthanc',
      wadoUriRoot: '/wado', qidoRoot: '/dicom-web', wadoRoot: '/dicom-web',
      qidoSupportsIncludeField: false, supportsReject: false,
      imageRendering: 'wadors', thumbnailRendering: 'wadors', enableStudyLazyLoad: true,
      supportsFuzzyMatching: false, supportsWildcard: true,
      omitQuotationForMultipartRequest: true, bulkDataURI: { enabled: true },
    },
  }],
};
"""

# What OHIF holds, read from its own services (OHIF sets window.services at start-up).
STATE_JS = """() => {
  const s = window.services;
  if (!s) { return null; }
  const sets = s.displaySetService.getActiveDisplaySets();
  return {
    displaySets: sets.map(d => ({
      modality: d.Modality, handler: d.SOPClassHandlerId, unsupported: !!d.unsupported,
      loaded: !!d.isLoaded, seriesNumber: d.SeriesNumber,
      measurements: (d.measurements || []).map(m => ({
        tracking: m.TrackingIdentifier, loaded: !!m.loaded,
        coords: (m.coords || []).map(c => ({
          valueType: c.ValueType, graphicType: c.GraphicType,
          points: (c.GraphicData || []).length / 2,
          sop: c.ReferencedSOPSequence ? c.ReferencedSOPSequence.ReferencedSOPInstanceUID : null,
        })),
        labels: (m.labels || []).map(l => [l.label, String(l.value)]),
      })),
    })),
    measurements: s.measurementService.getMeasurements().map(m => m.label),
    segmentations: s.segmentationService.getSegmentations().map(g => ({
      label: g.label,
      segments: Object.values(g.segments || {}).filter(x => x).map(x => x.label),
    })),
  };
}"""

SHOW_JS = """(modality) => {
  const s = window.services;
  const d = s.displaySetService.getActiveDisplaySets().find(x => x.Modality === modality);
  const viewportId = s.viewportGridService.getActiveViewportId();
  s.viewportGridService.setDisplaySetsForViewport({
    viewportId, displaySetInstanceUIDs: [d.displaySetInstanceUID] });
  return d.displaySetInstanceUID;
}"""


def require_viewer() -> None:
    """Skip unless OHIF's build, Chromium, Playwright and Orthanc's DICOMweb plugin are here."""
    if not (OHIF_DIST / "index.html").is_file():
        pytest.skip(
            "OHIF is not unpacked in build/ohif; `make test` runs deploy/viewer/fetch_ohif.py"
        )
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium is not installed (Debian package 'chromium'); `make test` installs it."
        )
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc's DICOMweb plugin is missing (Debian package 'orthanc-dicomweb').")
    pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.lock")


class _Handler(http.server.SimpleHTTPRequestHandler):
    pacs_url = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(OHIF_DIST), **kwargs)

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
            request = urllib.request.Request(self.pacs_url + self.path, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    self._send(response.status, response.read(), response.headers["Content-Type"])
            except urllib.error.HTTPError as error:
                self._send(error.code, b"", None)
            return
        if path == "/app-config.js":
            self._send(200, APP_CONFIG, "application/javascript")
            return
        if not (OHIF_DIST / path.lstrip("/")).is_file():
            self.path = "/index.html"  # the viewer's client-side routes
        super().do_GET()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextmanager
def ohif_server(pacs_url: str) -> Iterator[str]:
    """OHIF on a free loopback port in front of the Orthanc at ``pacs_url``; yields its URL."""
    handler = type("Handler", (_Handler,), {"pacs_url": pacs_url.rstrip("/")})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def open_viewer(url: str, study_uid: str, *, display_sets: int) -> Iterator[Any]:
    """A headless Chromium page with ``study_uid`` open in OHIF's viewer route, once OHIF
    has made at least ``display_sets`` display sets. Yields the Playwright page; its console
    lines are in ``page.console_lines``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            lines: list[str] = []
            page.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: lines.append(f"pageerror: {error}"))
            page.console_lines = lines
            page.goto(f"{url}/viewer?StudyInstanceUIDs={study_uid}", timeout=180_000)
            page.wait_for_function(
                "(n) => window.services && "
                "window.services.displaySetService.getActiveDisplaySets().length >= n",
                arg=display_sets,
                timeout=180_000,
            )
            yield page
        finally:
            browser.close()


def viewer_state(page: Any) -> dict[str, Any]:
    """What OHIF holds now (see ``STATE_JS``)."""
    return dict(page.evaluate(STATE_JS))


def show(page: Any, modality: str) -> None:
    """Put the study's first display set of ``modality`` in the active viewport."""
    page.evaluate(SHOW_JS, modality)


def wait_for(page: Any, predicate: Any, timeout: float = 120.0) -> dict[str, Any]:
    """Poll :func:`viewer_state` until ``predicate(state)`` holds; returns the last state."""
    deadline = time.monotonic() + timeout
    state = viewer_state(page)
    while not predicate(state) and time.monotonic() < deadline:
        time.sleep(1.0)
        state = viewer_state(page)
    return state
