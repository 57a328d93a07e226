"""CI runs the web-page tests: .ci/install_chromium.sh (here with a stand-in apt-get) installs a browser where none
is found, and a run without one says loudly that the page tests were skipped."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / ".ci" / "install_chromium.sh"
BASH = shutil.which("bash")
# Records each call; "update" fills the package lists, "install" succeeds only with them (as on a new machine).
FAKE_APT_GET = """#!/bin/sh
echo "$* ${DEBIAN_FRONTEND:-}" >> "$FAKE_BIN/apt.log"
case "$1" in
    update) [ "$APT_BROKEN" = 1 ] && exit 100; : > "$FAKE_BIN/lists" ;;
    install)
        if [ "$APT_BROKEN" = 1 ] || [ ! -e "$FAKE_BIN/lists" ]; then
            echo "E: Unable to locate package chromium" >&2; exit 100
        fi
        printf '#!/bin/sh\\n' > "$FAKE_BIN/chromium"; /bin/chmod +x "$FAKE_BIN/chromium" ;;
esac
"""
INSTALL = "install -y -qq --no-install-recommends chromium noninteractive"


@pytest.fixture
def fake_bin(tmp_path) -> Path:
    """A PATH of its own: no browser, a stand-in apt-get and id (the uid in FAKE_UID), and the few tools the script uses."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("env", "mktemp", "rm", "tail"):
        (folder / tool).symlink_to(shutil.which(tool))
    for name, text in (("apt-get", FAKE_APT_GET), ("id", '#!/bin/sh\necho "${FAKE_UID:-0}"\n')):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def install_chromium(fake_bin: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT)], env={"PATH": str(fake_bin), "FAKE_BIN": str(fake_bin), **env},
                          capture_output=True, text=True, timeout=60)


def apt_calls(fake_bin: Path) -> list[str]:
    log = fake_bin / "apt.log"
    return [line.strip() for line in log.read_text().splitlines()] if log.exists() else []


def test_a_new_machine_gets_chromium_from_apt(fake_bin):
    result = install_chromium(fake_bin)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr.startswith("install_chromium.sh: installed Chromium in ") and result.stderr.count("\n") == 1
    assert apt_calls(fake_bin) == [INSTALL, "update -qq", INSTALL]  # the lists are updated only because they had to be
    assert (fake_bin / "chromium").is_file()


def test_a_machine_with_chromium_is_left_alone(fake_bin):
    (fake_bin / "chromium").write_text("#!/bin/sh\n")
    (fake_bin / "chromium").chmod(0o755)
    result = install_chromium(fake_bin)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "") and apt_calls(fake_bin) == []


@pytest.mark.parametrize("env, why, calls", [
    ({"APT_BROKEN": "1"}, "apt-get could not install chromium", [INSTALL, "update -qq"]),
    ({"FAKE_UID": "1000"}, "no Chromium, and not root", []),
])
def test_without_a_browser_to_install_ci_goes_on_and_says_so(fake_bin, env, why, calls):
    result = install_chromium(fake_bin, **env)
    assert result.returncode == 0 and apt_calls(fake_bin) == calls
    assert result.stderr.startswith(f"install_chromium.sh: {why}: the web-page tests will be SKIPPED")
    assert ("Unable to locate package chromium" in result.stderr) == bool(calls)  # apt's own reason, when it ran


def test_skipped_page_tests_are_said_loudly():
    """A pytest run whose PATH has no browser ends with a line saying that the page tests did not run, and why."""
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/test_serve_page.py", "-q", "-p", "no:cacheprovider"],
                            cwd=ROOT, env={**os.environ, "PATH": str(Path(sys.executable).parent)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    lines = result.stdout.splitlines()
    assert any("web-page tests NOT RUN" in line for line in lines)
    assert any(re.fullmatch(r"\d+ skipped in tests/test_serve_page.py: no Chromium on this machine \(apt-get install "
                            r"chromium\); .ci/run installs Chromium with apt-get as root", line) for line in lines)
