#!/usr/bin/env bash
# Install Debian's Chromium for the web-page tests (tests/test_serve_page.py drives the system's browser) when no
# Chromium is on PATH. Needs root (or passwordless sudo) and apt-get; without them, or when apt-get fails, it says so
# and succeeds: the page tests are then skipped, and pytest's summary says that loudly.
set -uo pipefail
for browser in chromium chromium-browser google-chrome; do
    command -v "$browser" >/dev/null && exit 0
done
say() { echo "install_chromium.sh: $*" >&2; }
if [ "$(id -u)" = 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    say "no Chromium, and not root: the web-page tests will be SKIPPED"; exit 0
fi
command -v apt-get >/dev/null || { say "no Chromium and no apt-get: the web-page tests will be SKIPPED"; exit 0; }
log=$(mktemp)
install() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; }
start=$SECONDS
# The package lists of a new machine are empty or stale: update them only when the install fails without.
if install || { "${as_root[@]}" apt-get update -qq >>"$log" 2>&1 && install; }; then
    say "installed Chromium in $((SECONDS - start)) s"
else
    say "apt-get could not install chromium: the web-page tests will be SKIPPED; its last lines:"
    tail -n 5 "$log" >&2
fi
rm -f "$log"
