"""Background removal of a folder: plan one job per photo, stream them through the Predictor, write cut-outs."""
import csv
import io
import os
import re
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from carseg.data.exif import kept_exif
from carseg.data.storage import Place, check_writable as writable, contents, fetched, files_among, write_atomic
from carseg.data.images import (ENCODE_PARAMS, IMAGE_SUFFIXES, check_pixels, read_brightness, read_photo,
                                write_image_atomic)
from carseg.errors import CarsegError, failure
from carseg.inference.options import CutoutOptions, OutputLimits, TooLarge
from carseg.inference.predictor import Predictor, Prepared
from carseg.inference.device_refinement import Refined, on_device
from carseg.inference.refinement import Refinement
from carseg.inference.step import cut_out
from carseg.inference.streaming import stream
from carseg.interrupts import interrupted


@dataclass
class Job:
    """One input photo and where its outputs go (paths, or URIs' StoredPaths: carseg.data.storage)."""

    source: Place
    output: Place
    mask: Optional[Place]


SUMMARY_CSV = "summary.csv"


@dataclass
class PhotoRow:
    """One row of ``OUT/summary.csv``: a photo, what became of it, and how far to trust its cut-out."""

    photo: str
    output: str
    status: str                 # done, skipped (output there already: the earlier run's row is kept), failed, or
                                # pending (not reached: the run was stopped before it)
    confidence: str = ""        # in [0, 1], carseg.inference.confidence; empty when not known
    car_fraction: str = ""      # share of the photo's pixels in the cut-out
    cars: str = ""              # pictures written (one per car with --instances)
    error: str = ""


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    ignored: int = 0
    seconds: float = 0.0
    cars: Optional[int] = None  # cut-outs written with --instances (one per car)
    review: int = 0             # photos whose confidence is under review_below
    review_below: float = 0.5
    summary_csv: Optional[Place] = None

    def __str__(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        ignored = f", ignored {self.ignored} non-image files" if self.ignored else ""
        cars = f", {self.cars} cars cut out" if self.cars is not None else ""
        line = (f"done {self.done}, skipped {self.skipped} (already there), failed {self.failed}{ignored}{cars} "
                f"({rate:.2f} images/s)")
        if self.summary_csv is not None:
            photos = "1 photo" if self.review == 1 else f"{self.review} photos"
            line += f"; {photos} may need a look (confidence < {self.review_below:g}): see {self.summary_csv}"
        return line


def _earlier_rows(path: Place) -> Dict[str, Dict[str, str]]:
    """The rows of an earlier run's summary.csv by photo (none when absent or unreadable)."""
    try:
        text = contents(path).decode("utf-8", errors="surrogateescape")
        return {row["photo"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError):
        return {}


def _output_of(name: str) -> List[str]:
    """The NAMEs whose outputs a file called ``name`` could be: NAME.png|jpg|webp, NAME_<n>.png|jpg|webp (the n-th
    car with ``--instances``) or NAME_mask.png."""
    stem, suffix = os.path.splitext(name)
    names = [name[:-len("_mask.png")]] if name.endswith("_mask.png") else []
    if suffix[1:] in ENCODE_PARAMS:
        names.append(stem)
        numbered = re.fullmatch(r"(.+)_\d+", stem)
        names += [numbered[1]] if numbered else []
    return names


def own_outputs(summary_csv: Path) -> Callable[[Path], bool]:
    """Whether a file is one that runs into ``summary_csv``'s folder write, by its rows: any output (any
    ``--format``, ``--instances``, ``--save-mask``) of a photo whose output a row names, and ``summary_csv`` itself;
    never a file a row names as a photo. With OUT = IN these are not inputs on a rerun."""
    folder = lru_cache(maxsize=None)(os.path.realpath)
    where = lambda path: os.path.join(folder(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    rows = _earlier_rows(summary_csv).values()
    photos = {where(row["photo"]) for row in rows}
    outputs = {os.path.splitext(where(row["output"]))[0] for row in rows if row.get("output")}  # NAME, in its folder

    def own(path: Path) -> bool:
        place = where(path)
        here = os.path.dirname(place)
        return place not in photos and (place == where(summary_csv) or any(
            os.path.join(here, name) in outputs for name in _output_of(os.path.basename(place))))

    return own


def _skipped_row(job: Job, earlier: Dict[str, str]) -> PhotoRow:
    """A photo whose output exists: status skipped, with the earlier run's confidence and share when it has them."""
    kept = {name: earlier[name] for name in ("confidence", "car_fraction", "cars") if name in earlier}
    return PhotoRow(str(job.source), str(job.output), "skipped", **kept)


def write_summary_csv(path: Place, rows: List[PhotoRow]) -> None:
    """``rows`` as ``path`` (atomically)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, [f.name for f in fields(PhotoRow)])
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    write_atomic(path, text.getvalue().encode("utf-8", errors="surrogateescape"))


def instance_path(output: Path, number: int) -> Path:
    """``OUT/NAME_<number>.<fmt>``: the cut-out of a photo's ``number``-th largest car."""
    return output.with_name(f"{output.stem}_{number}{output.suffix}")


def in_shard(relative: Path, shard: Tuple[int, int]) -> bool:
    """Deterministic by file name (a hash, not a position), so adding files does not reshuffle shards."""
    return zlib.crc32(os.fsencode(relative.as_posix())) % shard[1] == shard[0]  # a name's bytes, UTF-8 or not


def plan_jobs(in_dir: Path, out_dir: Path, fmt: str, save_mask: bool, recursive: bool,
              shard: Tuple[int, int] = (0, 1)) -> Tuple[List[Job], int]:
    """Jobs for every image under ``in_dir`` (this shard only), and the count of ignored non-image files. What an
    earlier run wrote to ``out_dir`` (:func:`own_outputs`) is no input, so OUT = IN reruns skip what is done."""
    if not in_dir.is_dir():
        raise CarsegError(f"{in_dir}: input folder not found")
    out_resolved = out_dir.resolve()
    inside_out = lambda p: out_resolved != in_dir.resolve() and out_resolved in p.resolve().parents  # OUT below IN
    own = own_outputs(out_dir / SUMMARY_CSV)
    candidates = in_dir.rglob("*") if recursive else in_dir.iterdir()
    # a dangling link is kept (it fails with its own line later), not skipped as if it were no file
    files = sorted(p for p in candidates if (p.is_file() or (p.is_symlink() and not p.exists()))
                   and not p.name.startswith(".") and not inside_out(p) and not own(p))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise CarsegError(f"{in_dir}: no images found ({', '.join(IMAGE_SUFFIXES)})" + ("" if recursive else "; use --recursive for subfolders"))
    jobs, seen = [], {}
    for path in images:
        relative = path.relative_to(in_dir)
        if not in_shard(relative, shard):
            continue
        output = out_dir / relative.parent / f"{relative.stem}.{fmt}"
        if output in seen:
            raise CarsegError(f"{path}: its output {output} would also be written for {seen[output]}; rename one of them")
        seen[output] = path
        jobs.append(Job(path, output, out_dir / relative.parent / f"{relative.stem}_mask.png" if save_mask else None))
    inputs = {p.resolve(): p for p in images}
    clash = next(((job, target) for job in jobs for target in (job.output, job.mask) if target and target.resolve() in inputs), None)
    if clash:
        job, target = clash
        raise CarsegError(f"{inputs[target.resolve()]}: writing {job.source}'s output there would overwrite this input; "
                          "choose another OUT folder")
    return jobs, len(files) - len(images)


def check_writable(out_dir: Place) -> None:
    """Create ``out_dir`` if needed and prove a file can be written there, before any model is loaded."""
    try:
        writable(out_dir)
    except OSError as exc:
        raise CarsegError(f"{out_dir}: cannot write there ({exc.strerror or exc}); choose another OUT folder") from None


@contextmanager
def naming(source: Path) -> Iterator[None]:
    """An ``OutputLimits`` refusal (worded for any photo) with the photo's path in front, as every failed: line has."""
    try:
        yield
    except TooLarge as exc:
        raise CarsegError(f"{source}: {exc}") from None


@dataclass
class PhotoWork:
    """A folder run's per-photo work, the same in the local stream and in Ray's actors (``--ray``): a photo's network
    input, then, after the forward pass, its cut-out(s), mask and summary row."""

    predictor: Predictor
    options: CutoutOptions = CutoutOptions()
    fmt: str = "png"
    max_megapixels: float = 150.0
    max_instances: int = 50  # with --instances: more cars than this fail the photo before any picture is made
    refine_on: str = "auto"  # the full-resolution mask work (upsampling, --refine, threshold): on the model's device
                             # ("device"), in the finishing workers ("workers"), or "auto": the device if a GPU

    def __post_init__(self) -> None:
        self.on_device = on_device(self.refine_on, self.predictor.device)  # a bad refine_on fails here

    @classmethod
    def load(cls, predictor: Dict[str, Any], **settings: Any) -> "PhotoWork":
        """The work with a Predictor built from ``predictor`` (its keyword arguments): where no Predictor can be sent."""
        return cls(Predictor(**predictor), **settings)

    def settings(self) -> Dict[str, Any]:
        """Everything but the Predictor: what :meth:`load` takes beside the Predictor's arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "predictor"}

    def read(self, job: Job) -> Tuple[Prepared, Place]:
        """The network input, and the photo for ``finish`` (its path; a stored photo with its bytes). Only they travel
        from the loader workers (a reduced-scale JPEG decode, not 7 MB per photo); the full-size photo is decoded where
        the cut-out needs it, in ``finish`` (and ``on_device`` its brightness, in the forwarding process: ``forward``).
        A photo over
        ``max_megapixels``, or whose cut-out could grow over it (crop margins, canvas), fails from its header alone."""
        source = fetched(job.source)  # a stored photo is fetched once, for its header, this and ``finish``
        height, width = check_pixels(source, self.max_megapixels)
        with naming(job.source):
            self.limits.check(self.options, self.fmt, width, height)
        return self.predictor.read(source, (height, width)), source

    def forward(self, prepared: List[Prepared]) -> List[Any]:
        """The batch's probability maps: at network resolution, or ``on_device`` refined to full size there
        (``Predictor.refined``, from inputs whose ``guide`` is ``read_brightness`` of the photo)."""
        return self.predictor.refined(prepared) if self.on_device else self.predictor.forward(prepared)

    @property
    def limits(self) -> OutputLimits:
        """The bounds of the pictures made of one photo (as the service's)."""
        return OutputLimits(int(self.max_megapixels * 1e6), self.max_instances)

    def finishing(self) -> "Finishing":
        """The work after the forward pass (``finish``), without the model: what a worker process holds."""
        return Finishing(self.predictor.refinement, self.options, self.fmt, self.limits)

    def run(self, jobs: List[Job]) -> List[PhotoRow]:
        """``jobs`` read, run through the model in the Predictor's batches and finished: a row each, a failure as a
        row with its one-line error (a Ray actor's batch)."""
        rows: Dict[int, PhotoRow] = {}
        failed = lambda job, exc: PhotoRow(str(job.source), str(job.output), "failed", error=failure(job.source, exc))
        inputs = []
        for job in jobs:
            try:
                prepared, source = self.read(job)
                inputs.append((job, replace(prepared, guide=read_brightness(source)) if self.on_device else prepared,
                               source))
            except Exception as exc:  # one odd file, one row
                rows[id(job)] = failed(job, exc)
        size = self.predictor.default_batch_size  # on CPU large inputs cost more per photo in a batch of 8 than alone
        probs = [prob for start in range(0, len(inputs), size)
                 for prob in self.forward([prepared for _, prepared, _ in inputs[start: start + size]])]
        finish = self.finishing()
        for (job, _, source), prob in zip(inputs, probs):
            try:
                rows[id(job)] = finish(job, source, prob)
            except Exception as exc:
                rows[id(job)] = failed(job, exc)
        return [rows[id(job)] for job in jobs]


@dataclass(frozen=True)
class Finishing:
    """A folder run's work after the forward pass: no model, so worker processes hold it (``stream``'s finishers)."""

    refinement: Refinement
    options: CutoutOptions
    fmt: str
    limits: OutputLimits

    def __call__(self, job: Job, source: Optional[Place], prob: Union[np.ndarray, Refined]) -> PhotoRow:
        """Decode + upsample + compose + encode + write; the photo's summary row. The pictures carry the photo's
        colour profile, and its EXIF as ``keep_metadata`` and ``keep_location`` say. ``source``: the photo as
        ``PhotoWork.read`` had it (a stored one with its bytes); None: ``job.source``. ``prob``:
        ``PhotoWork.forward``'s."""
        photo = read_photo(source or job.source)
        with naming(job.source):
            cut = cut_out(self.refinement, photo.pixels, prob, self.options, limits=self.limits, profile=photo.profile)
        exif = kept_exif(photo.exif, self.options.keep_metadata, self.options.keep_location)
        if job.mask is not None:
            write_image_atomic(job.mask, cut.hard, "png")
        instances = self.options.instances
        outputs = [instance_path(job.output, i + 1) for i in range(len(cut.pictures))] if instances else [job.output]
        for output, picture in zip(outputs, cut.pictures):
            write_image_atomic(output, picture, self.fmt, True, photo.profile, exif)  # in place: a fresh array
        return PhotoRow(str(job.source), str(job.output), "done", f"{cut.confidence:.4f}", f"{cut.car_fraction:.4f}",
                        str(len(cut.pictures)))


# (job, its row, None) or (job, None, one-line error) for each job, as they are finished
Results = Iterator[Tuple[Job, Optional[PhotoRow], Optional[str]]]


def remove_backgrounds(jobs: List[Job], work: PhotoWork, batch_size: int = 8, workers: int = 2, finishers: int = 0,
                       overwrite: bool = False,
                       progress: bool = True, log=print, summary_csv: Optional[Place] = None, review_below: float = 0.5,
                       elsewhere: Optional[Callable[[List[Job]], Results]] = None) -> Summary:
    """Run every job not done yet (all with ``overwrite``); each failure is logged as one ``failed:`` line.
    With ``options.instances`` a photo is done when its first car's cut-out exists, or when the earlier run's row in
    ``summary_csv`` says it was done with no car. With ``summary_csv``, one row per job is written there before the
    first photo (pending), at the end (a skipped photo keeps the earlier run's row; earlier rows of photos not among
    ``jobs`` stay) and when Ctrl-C or SIGTERM stops the run (then :class:`~carseg.interrupts.Interrupted` says how
    many were done); the summary counts the photos whose confidence is under ``review_below``. The jobs run in this
    process's stream (``workers`` processes decode, ``finishers`` processes finish; 0: threads of this process), or
    ``elsewhere`` (``carseg.inference.ray_data.run_on_ray``: the same work in Ray's actors)."""
    options = work.options
    summary = Summary(cars=0 if options.instances else None, review_below=review_below, summary_csv=summary_csv)
    earlier = _earlier_rows(summary_csv) if summary_csv is not None else {}

    first = (lambda job: instance_path(job.output, 1)) if options.instances else (lambda job: job.output)
    # asked at once: in object storage one listing, not a request per photo
    present = set() if overwrite else files_among(p for job in jobs for p in (job.mask, first(job)) if p is not None)

    def done(job: Job) -> bool:
        if job.mask is not None and job.mask not in present:
            return False
        if not options.instances:
            return job.output in present
        row = earlier.get(str(job.source), {})
        no_car = row.get("output") == str(job.output) and row.get("status") in ("done", "skipped") and row.get("cars") == "0"
        return no_car or first(job) in present

    todo = [job for job in jobs if overwrite or not done(job)]
    summary.skipped = len(jobs) - len(todo)
    started = time.perf_counter()

    def finished(job: Job, row: PhotoRow) -> None:  # kept as finished, not as yielded: a stopped run counts it too
        rows[str(job.source)] = row

    pending = {id(job) for job in todo}
    rows = {str(job.source): PhotoRow(str(job.source), str(job.output), "pending") if id(job) in pending
            else _skipped_row(job, earlier.get(str(job.source), {})) for job in jobs}
    # photos this run does not plan (another shard, a subfolder, one since removed) keep their rows, which name
    # their outputs: an OUT = IN run after this one still knows them as outputs
    others = [PhotoRow(**{f.name: row.get(f.name) or "" for f in fields(PhotoRow)})
              for photo, row in earlier.items() if photo not in rows]

    def record() -> None:
        if summary_csv is not None:
            write_summary_csv(summary_csv, [*rows.values(), *others])

    record()  # before any photo too, so a run stopped in any way leaves its outputs named (OUT = IN reruns: own_outputs)
    results = elsewhere(todo) if elsewhere is not None else stream(
        todo, work.predictor, work.read, work.finishing(), batch_size, workers, progress, source=attrgetter("source"),
        finishers=finishers, done=finished, forward=work.forward, guide=read_brightness if work.on_device else None)
    try:
        for job, row, error in results:
            if error:
                summary.failed += 1
                log(f"failed: {error}")
                rows[str(job.source)] = PhotoRow(str(job.source), str(job.output), "failed", error=error)
            else:
                summary.done += 1
                rows[str(job.source)] = row
                if options.instances:
                    summary.cars += int(row.cars)
    except KeyboardInterrupt as stop:
        results.close()  # the photos being written finish, no other starts
        record()
        done = sum(rows[str(job.source)].status == "done" for job in todo)
        raise interrupted(stop, f"{done} of {len(todo)} photos done, rerun to continue") from None
    summary.seconds = time.perf_counter() - started
    summary.review = sum(1 for row in rows.values() if row.confidence and float(row.confidence) < review_below)
    record()
    return summary
