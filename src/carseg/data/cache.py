"""Decoded training inputs at the training size (``bin/prepare_dataset.py --cache H W``): each photo and its mask
decoded and resized once, as the training transforms' first step would (:func:`carseg.data.dataset.read_pair`, then
:func:`carseg.data.transforms.fit_inside`), and stored as ``.npy`` (the cheapest to read: ~0.05 ms for a 256x384
photo, against ~2 ms for its 1/4-scale JPEG and 10-19 ms for the full-size mask). A config trains from it with
``experiment.cached: true``; the augmentations still run per epoch, on the same arrays as without the cache.

``DIR/cache/h256-w384[-soft]/``: ``images/NAME.npy`` (uint8 RGB), ``masks/NAME.npy`` (uint8 {0, 1}, or float32 coverage
with ``--soft-masks``) and copies of ``DIR``'s CSVs pointing at them."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from carseg.atomic import atomic_path
from carseg.data.dataset import read_pair
from carseg.data.transforms import fit_inside
from carseg.errors import CarsegError, one_line

CACHE_DIR = "cache"
Pair = Tuple[Path, Path]


def cache_folder(datapath: Path, image_hw: Tuple[int, int], soft_masks: bool) -> Path:
    """``DIR/cache/h256-w384`` (``-soft`` with soft masks): one folder per training size and kind of mask."""
    height, width = image_hw
    return Path(datapath) / CACHE_DIR / f"h{height}-w{width}{'-soft' if soft_masks else ''}"


def cached_csv(csv: Path, image_hw: Tuple[int, int], soft_masks: bool) -> Path:
    """Where the cache of ``csv``'s folder keeps its copy of ``csv``."""
    return cache_folder(Path(csv).parent, image_hw, soft_masks) / Path(csv).name


def cache_command(datapath: Path, image_hw: Tuple[int, int], soft_masks: bool) -> str:
    """The command that builds this cache (for error messages)."""
    return (f"bin/prepare_dataset.py --datapath {datapath} --cache {image_hw[0]} {image_hw[1]}"
            + (" --soft-masks" if soft_masks else ""))


def entry(folder: Path, image: Path) -> Pair:
    """The cached (image, mask) files of the pair whose photo is ``image``."""
    return folder / "images" / f"{image.stem}.npy", folder / "masks" / f"{image.stem}.npy"


STAMP_TOLERANCE_NS = 1_000_000  # file systems that keep times to the microsecond or millisecond


def _stamps(sources: Pair) -> Tuple[int, int]:
    """The modification times of the photo and the mask (their targets, for links), in ns."""
    return sources[0].stat().st_mtime_ns, sources[1].stat().st_mtime_ns


def _save(path: Path, array: np.ndarray, stamp: int) -> None:
    """``array`` to ``path`` atomically, with its source's ``stamp`` as its modification time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as file:  # a file object: np.save would append .npy to a name
            np.save(file, array)
        os.utime(tmp, ns=(stamp, stamp))


def up_to_date(cached: Pair, sources: Pair) -> bool:
    """Both cached files exist and carry their sources' current times: a photo or mask replaced since, by a newer
    file or an older one (``cp -p``, ``rsync -a``), is decoded again (both: the mask is resized to the photo)."""
    try:
        return all(abs(path.stat().st_mtime_ns - stamp) < STAMP_TOLERANCE_NS for path, stamp in zip(cached, _stamps(sources)))
    except OSError:
        return False


def cache_pair(image: Path, mask: Path, folder: Path, image_hw: Tuple[int, int], soft_masks: bool) -> bool:
    """Decode, resize and store one pair unless its entry is up to date; True when it was written."""
    cached = entry(folder, image)
    if up_to_date(cached, (image, mask)):
        return False
    stamps = _stamps((image, mask))  # before reading: a file replaced meanwhile is decoded again next time
    photo, target = read_pair(image, mask, image_hw, soft_masks)
    fitted = fit_inside(image_hw, soft_masks)(image=photo, mask=target)
    _save(cached[0], np.ascontiguousarray(fitted["image"]), stamps[0])
    _save(cached[1], np.ascontiguousarray(fitted["mask"]), stamps[1])
    return True


def write_cache(datapath: Path, csvs: Sequence[Path], image_hw: Tuple[int, int], soft_masks: bool,
                workers: Optional[int] = None) -> Tuple[str, List[str]]:
    """Cache every pair the ``csvs`` list (prepare's outputs in ``datapath``) and write their copies pointing at the
    cache; returns a summary and one line per photo that failed (printed as it fails; left out of the copies)."""
    folder = cache_folder(Path(datapath).resolve(), image_hw, soft_masks)  # the CSVs name absolute paths
    frames = {Path(csv): pd.read_csv(csv) for csv in csvs}
    pairs = list(dict.fromkeys((Path(i), Path(m)) for frame in frames.values() for i, m in zip(frame["image"], frame["mask"])))
    failed: List[str] = []
    written = 0

    def one(pair: Pair) -> Optional[bool]:
        try:
            return cache_pair(*pair, folder, image_hw, soft_masks)
        except Exception as exc:  # noqa: BLE001 - one bad photo must not stop the batch
            message = one_line(exc) if isinstance(exc, CarsegError) else f"{pair[0]}: {type(exc).__name__}: {one_line(exc)}"
            failed.append(message)
            print(f"failed: {message}", file=sys.stderr, flush=True)
            return None

    bad = set()
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:  # decoding releases the GIL
        for pair, result in zip(pairs, pool.map(one, pairs)):
            if result is None:
                bad.add(str(pair[0]))
            written += bool(result)
    for csv, frame in frames.items():
        kept = frame[~frame["image"].astype(str).isin(bad)].copy()
        cached = [entry(folder, Path(image)) for image in kept["image"]]
        kept["image"] = [str(i) for i, _ in cached]
        kept["mask"] = [str(m) for _, m in cached]
        with atomic_path(folder / csv.name) as tmp:
            kept.to_csv(tmp, index=False)
    height, width = image_hw
    summary = (f"cache {height}x{width} ({'soft' if soft_masks else 'binary'} masks): {written} pairs decoded, "
               f"{len(pairs) - written - len(bad)} up to date" + (f", {len(bad)} failed (left out)" if bad else "")
               + f" -> {folder}; train from it with experiment.cached: true (--set experiment.cached=true)")
    return summary, failed


def check_cached(images: Iterable[str], masks: Iterable[str], image_hw: Tuple[int, int], soft_masks: bool) -> None:
    """The first cached row fits ``image_hw`` (the transforms' resize leaves it as it is) and holds the kind of mask
    the experiment trains with, else a one-line error with the command to build the right cache."""
    image, mask = next(iter(images), None), next(iter(masks), None)
    if image is None:
        return
    height, width = np.load(image, mmap_mode="r").shape[:2]
    soft = np.load(mask, mmap_mode="r").dtype == np.float32
    fits = height <= image_hw[0] and width <= image_hw[1] and (height == image_hw[0] or width == image_hw[1])
    if not fits or soft != soft_masks:
        datapath = Path(image).parents[3]
        raise CarsegError(
            f"{image}: cached at {height}x{width} with {'soft' if soft else 'binary'} masks, but the experiment trains at "
            f"{image_hw[0]}x{image_hw[1]} with {'soft' if soft_masks else 'binary'} masks; run "
            f"{cache_command(datapath, image_hw, soft_masks)} and set experiment.cached: true")
