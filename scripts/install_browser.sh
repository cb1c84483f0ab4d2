#!/usr/bin/env bash
# Install a headless browser (Chromium from the OS packages) for checking the HTML report by eye and for
# tests/integration/test_report_render.py, which is skipped with a reason when no browser is found.
# Not needed by CI or by anything else in interp. Debian/Ubuntu (apt); run as root or with sudo.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then
  echo "a Chromium-family browser is already installed"
  exit 0
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
chromium --version
