"""The OHIF v3 viewer, as a reading room runs it, in headless Chromium (issue 18).

* :func:`ohif_server` (:mod:`rgcds.demo.viewer`, as the demo runs it) serves OHIF's prebuilt
  ``dist`` (``deploy/viewer/fetch_ohif.py``, which ``make test`` runs) on a free loopback
  port in front of an Orthanc with its DICOMweb plugin, on one origin.
* :func:`open_viewer` starts Debian's Chromium through Playwright (no browser download),
  opens a study in OHIF's viewer route and waits until OHIF has made its display sets.
* :func:`viewer_state` reads what OHIF itself holds: ``window.services`` (display sets with
  their SOP class handler, the SR measurements OHIF parsed with their coordinates, the
  segmentations and their segments).

Skips with the reason when Chromium, Playwright, the DICOMweb plugin or the OHIF build is
missing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rgcds.demo.orthanc import DICOMWEB_PLUGIN
from rgcds.demo.viewer import ohif_server as _ohif_server

ROOT = Path(__file__).resolve().parents[1]
OHIF_DIST = ROOT / "build" / "ohif" / "dist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

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

SHOW_JS = """([modality, series]) => {
  const s = window.services;
  const d = s.displaySetService.getActiveDisplaySets().find(
    x => x.Modality === modality && (series === null || Number(x.SeriesNumber) === series));
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
            # A reader who has seen OHIF's first-use tour: it would dim the screenshots.
            page.add_init_script(
                "localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))"
            )
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


def show(page: Any, modality: str, series: int | None = None) -> None:
    """Put the study's first display set of ``modality`` (of series number ``series``, when
    given) in the active viewport."""
    page.evaluate(SHOW_JS, [modality, series])


def wait_for(page: Any, predicate: Any, timeout: float = 120.0) -> dict[str, Any]:
    """Poll :func:`viewer_state` until ``predicate(state)`` holds; returns the last state."""
    deadline = time.monotonic() + timeout
    state = viewer_state(page)
    while not predicate(state) and time.monotonic() < deadline:
        time.sleep(1.0)
        state = viewer_state(page)
    return state


def ohif_server(pacs_url: str) -> Any:
    """OHIF from the checkout's ``build/ohif/dist`` in front of ``pacs_url`` (a context
    manager yielding its URL)."""
    return _ohif_server(pacs_url, OHIF_DIST)
