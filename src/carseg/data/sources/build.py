"""Assemble the real development set from local clones of its public sources, checked file by file against
``manifest.csv``: ``OUT/train/NAME.{jpg,png}``, ``OUT/train_masks/NAME_mask.png`` (0/255), ``OUT/sources.csv``
(name, source, kind, split: what ``prepare_dataset.py`` splits by) and ``OUT/LICENCES.md``."""
import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

from carseg.atomic import atomic_path, write_bytes_atomic
from carseg.data.sources import SOURCES_CSV, Sample, camvid, carvana_dev, graz02, roboflow
from carseg.data.sources.git_blobs import GitBlobs, find_git_dir
from carseg.errors import CarsegError

MANIFEST = Path(__file__).with_name("manifest.csv")
SOURCES: Dict[str, ModuleType] = {"carvana_dev": carvana_dev, "camvid": camvid, "graz02": graz02, "roboflow": roboflow}
FIELDS = ("name", "source", "repo", "commit", "image", "masks", "kind", "split", "sha256")


@dataclass(frozen=True)
class Entry:
    """One manifest row: where a photo comes from and the hash of its image and mask bytes."""

    name: str
    source: str
    repo: str
    commit: str
    image: str
    masks: str  # ";"-joined paths
    kind: str
    split: str
    sha256: str


def _repos(module: ModuleType) -> Dict[str, str]:
    """repo -> commit of a source module (Carvana's development set spans two repositories)."""
    return {repo: spec[0] for repo, spec in module.REPOS.items()} if hasattr(module, "REPOS") else {module.REPO: module.COMMIT}


def _digest(files: Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for data in files:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def read_manifest(path: Path = MANIFEST) -> List[Entry]:
    with open(path, newline="") as handle:
        return [Entry(**row) for row in csv.DictReader(handle)]


def _blobs(sources_dir: Path, repo: str, commit: str, cache: Dict[str, GitBlobs]) -> GitBlobs:
    if repo not in cache:
        cache[repo] = GitBlobs(find_git_dir(sources_dir, repo), commit, repo)
    return cache[repo]


def build(sources_dir: Path, out: Path, only: Optional[Sequence[str]] = None, manifest: Path = MANIFEST) -> Counter:
    """Write every manifest photo (of the sources in ``only``, default all) into ``out``; files already there and
    whole are kept. Raises CarsegError naming the first missing repository, file or changed hash. Returns counts by kind."""
    entries = [e for e in read_manifest(manifest) if only is None or e.source in only]
    unknown = set(only or ()) - set(SOURCES)
    if unknown:
        raise CarsegError(f"unknown source {sorted(unknown)[0]!r}; choose from {', '.join(SOURCES)}")
    cache: Dict[str, GitBlobs] = {}
    by_repo: Dict[str, List[Entry]] = {}
    for entry in entries:
        by_repo.setdefault(entry.repo, []).append(entry)
    for repo, group in by_repo.items():
        blobs = _blobs(sources_dir, repo, group[0].commit, cache)
        (out / "train").mkdir(parents=True, exist_ok=True)  # only once a clone is found: a failed build leaves nothing
        (out / "train_masks").mkdir(parents=True, exist_ok=True)
        paths = [p for e in group for p in (e.image, *e.masks.split(";"))]
        data = dict(blobs.read(paths))
        for entry in group:
            masks = [data[p] for p in entry.masks.split(";")]
            image = data[entry.image]
            if _digest([image, *masks]) != entry.sha256:
                raise CarsegError(f"{repo}@{entry.commit[:10]}: {entry.image} differs from the manifest's hash; "
                                  "the clone holds other bytes than the recorded commit: clone it again")
            _write(out, entry, image, lambda: SOURCES[entry.source].mask(masks))
    _write_index(out, entries)
    return Counter(f"{e.kind}/{e.split}" for e in entries)


def _write(out: Path, entry: Entry, image: bytes, mask: Callable[[], np.ndarray]) -> None:
    """The image's bytes and its 0/255 mask (decoded by ``mask()`` only when the file is not there yet)."""
    suffix = Path(entry.image).suffix.lower()
    image_path, mask_path = out / "train" / f"{entry.name}{suffix}", out / "train_masks" / f"{entry.name}_mask.png"
    if not image_path.is_file() or image_path.stat().st_size != len(image):
        write_bytes_atomic(image_path, image)
    if not mask_path.is_file():
        ok, encoded = cv2.imencode(".png", mask())
        if not ok:
            raise CarsegError(f"{mask_path}: could not encode the mask")
        write_bytes_atomic(mask_path, encoded.tobytes())


def _write_index(out: Path, entries: List[Entry]) -> None:
    """``sources.csv`` (what prepare_dataset.py splits by) and ``LICENCES.md``."""
    with atomic_path(out / SOURCES_CSV) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("name", "source", "kind", "split"))
        writer.writerows((e.name, e.source, e.kind, e.split) for e in entries)
    lines = ["# Licences of the photos in this folder (never commit or redistribute them)", ""]
    counts = Counter(e.source for e in entries)
    for name, module in SOURCES.items():
        if counts[name]:
            repos = ", ".join(f"github.com/{repo} @ {commit}" for repo, commit in _repos(module).items())
            lines.append(f"- {name}: {counts[name]} photos from {repos}. {module.LICENCE}.")
    with atomic_path(out / "LICENCES.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_manifest(sources_dir: Path, exclude: Sequence[str] = (), manifest: Path = MANIFEST) -> int:
    """Maintainers: list every usable photo of every source with its hash, leaving out the names in ``exclude``
    (what ``../shared/leakcheck/check.py`` flagged in a build). Returns the number of rows."""
    rows = []
    cache: Dict[str, GitBlobs] = {}
    for source, module in SOURCES.items():
        for repo, commit in _repos(module).items():
            blobs = _blobs(sources_dir, repo, commit, cache)
            seen = {r.name for r in rows}  # the first repository holding a photo wins (Carvana's repos overlap)
            samples: List[Sample] = [s for s in module.samples(blobs) if s.name not in exclude and s.name not in seen]
            data = dict(blobs.read([p for s in samples for p in (s.image, *s.masks)]))
            rows += [Entry(s.name, source, repo, commit, s.image, ";".join(s.masks), s.kind, s.split,
                           _digest([data[p] for p in (s.image, *s.masks)])) for s in samples]
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerows([getattr(r, f) for f in FIELDS] for r in rows)
    return len(rows)
