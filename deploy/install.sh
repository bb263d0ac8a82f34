#!/usr/bin/env bash
# Install rgcds as a systemd service on a Debian host. Run as root from a checkout.
#   deploy/install.sh [PREFIX]   (default /opt/rgcds)
# Creates the rgcds user, installs the venv from the hash-checked locks, puts the example
# config in /etc/rgcds (if none exists), the storage root in /var/lib/rgcds, and the unit.
set -euo pipefail
PREFIX=${1:-/opt/rgcds}
SRC=$(cd "$(dirname "$0")/.." && pwd)

id rgcds >/dev/null 2>&1 || useradd --system --home-dir /var/lib/rgcds --shell /usr/sbin/nologin rgcds
install -d -o rgcds -g rgcds -m 0750 /var/lib/rgcds
install -d -m 0755 /etc/rgcds
[ -e /etc/rgcds/rgcds.toml ] || install -m 0640 -g rgcds "$SRC/deploy/rgcds.toml.example" /etc/rgcds/rgcds.toml

if [ "$SRC" != "$PREFIX" ]; then
  install -d "$PREFIX"
  cp -a "$SRC/." "$PREFIX/"
fi
make -C "$PREFIX" install
install -m 0644 "$PREFIX/deploy/systemd/rgcds.service" /etc/systemd/system/rgcds.service
systemctl daemon-reload
echo "Edit /etc/rgcds/rgcds.toml, check it with:"
echo "  $PREFIX/.venv/bin/rgcds check --config /etc/rgcds/rgcds.toml"
echo "then: systemctl enable --now rgcds"
