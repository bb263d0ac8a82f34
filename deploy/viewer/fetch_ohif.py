"""Fetch the OHIF v3 viewer's prebuilt ``dist`` from the npm registry and unpack it.

    python deploy/viewer/fetch_ohif.py build/ohif

The tarball of ``@ohif/app`` (pinned below) is checked against the registry's sha512
integrity before anything is unpacked, the way ``npm ci`` checks a lock file; only its
``package/dist`` folder is kept. Run by ``make test`` and ``make demo`` (build time, never
by the daemon). Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "3.12.10"
URL = f"https://registry.npmjs.org/@ohif/app/-/app-{VERSION}.tgz"
INTEGRITY = (
    "sha512-0kuF66Mq9c9dMD++bUsTjMrJpXJwaZhz9B4uS244DawAjSkTwIYFU93pxPuRUQixaRi7QAHlF3Fe1qudBlZrmA=="
)


def fetch(target: Path) -> Path:
    """Unpack OHIF's ``dist`` into ``target / "dist"`` (idempotent); returns that folder."""
    stamp = target / f".ohif-{VERSION}"
    dist = target / "dist"
    if stamp.exists() and (dist / "index.html").is_file():
        return dist
    with urllib.request.urlopen(URL, timeout=300) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"@ohif/app {VERSION}: integrity mismatch ({digest[:24]}...)")
    if dist.exists():
        shutil.rmtree(dist)
    target.mkdir(parents=True, exist_ok=True)
    prefix = "package/dist/"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        for member in members:
            member.name = "dist/" + member.name[len(prefix) :]
        archive.extractall(target, members=members, filter="data")
    stamp.write_text(INTEGRITY + "\n")
    return dist


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1] if len(sys.argv) > 1 else "build/ohif")))
