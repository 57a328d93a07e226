"""Every use of Catalyst's, accelerate's and hydra-slayer's private API, in one place, each patch saying what it fixes.

The patches are written against the versions pinned in requirements.txt; importing this package checks the
installed ones and fails with one line on another version, rather than misbehaving halfway through a training run.
"""
from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

from carseg.errors import CarsegError

# package -> [lowest, first unsupported) versions the patches in this package were checked with
SUPPORTED = {"catalyst": ("22.4", "22.5"), "accelerate": ("0.26", "1.0"), "hydra-slayer": ("0.5", "0.6")}


def check_versions() -> None:
    """Fail with one line unless every patched package is at a version these patches were written for."""
    for package, (low, high) in SUPPORTED.items():
        try:
            found = version(package)
        except PackageNotFoundError:
            raise CarsegError(f"{package} is not installed; run bash bin/setup.sh") from None
        if not Version(low) <= Version(found) < Version(high):
            raise CarsegError(f"{package} {found} is installed, but carseg's patches of it (carseg/compat) are written for "
                              f">={low},<{high}; install the pins in requirements.txt (bash bin/setup.sh)")


check_versions()
