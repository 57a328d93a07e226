#!/usr/bin/env bash
# Create .venv and install the pinned stack and carseg (editable). Idempotent: re-running
# after requirements.txt changes re-installs; otherwise it returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# catalyst 22.4's wheel metadata is rejected by pip >= 24.1
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'pip==24.0'
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
echo "$want" > "$stamp"
echo "setup.sh: environment ready in .venv"
