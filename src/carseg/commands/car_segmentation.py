"""``bin/car_segmentation.py IN OUT [MODEL]``: options in, one line per failed photo and a summary out."""
import argparse
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Tuple

from carseg.commands.model_options import add_model_options, add_refine_on, load_predictor, predictor_kwargs
from carseg.cores import available_cores
from carseg.data.storage import Place, location, object_store
from carseg.errors import CarsegError, printable
from carseg.inference.options import add_arguments, check_format, cutout_options
from carseg.interrupts import exit_cleanly

if TYPE_CHECKING:
    from carseg.inference.background_removal import PhotoWork

PROG = "car_segmentation.py"


def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CarsegError(f"--shard {text}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise CarsegError(f"--shard {text}: need 0 <= I < N")
    return index, count


def folder(text: str) -> Place:
    """IN or OUT: a path, or a URI that pyarrow opens (``s3://``, ``gs://``, ``file://``: carseg.data.storage)."""
    try:
        return location(text)
    except CarsegError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Cut cars out of every photo in IN and write them to OUT (RGBA PNG by default).")
    parser.add_argument("input", type=folder, metavar="IN",
                        help="folder of photos: a path, or a URI that pyarrow opens (file://; s3://, gs:// with --ray), "
                             "with credentials from the environment as pyarrow reads them (AWS_*, "
                             "GOOGLE_APPLICATION_CREDENTIALS, instance roles)")
    parser.add_argument("output", type=folder, metavar="OUT", help="folder for the cut-outs (created if needed), as IN")
    add_model_options(parser)
    add_arguments(parser)  # the cut-out options and --format
    parser.add_argument("--review-below", type=float, default=0.5, metavar="C",
                        help="count the photos whose confidence (OUT/summary.csv) is under C (default %(default)s)")
    parser.add_argument("--max-megapixels", type=float, default=150.0, metavar="MP",
                        help="refuse photos over MP megapixels from their header, before decoding (default %(default)s)")
    parser.add_argument("--max-instances", type=int, default=50, metavar="N",
                        help="with --instances: a photo with more cars fails before any picture is made (default %(default)s)")
    parser.add_argument("--save-mask", action="store_true", help="also write OUT/NAME_mask.png")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="photos per forward pass (default: 32 on GPU; on CPU 8 at 128x192 down to 1 at 512x768)")
    parser.add_argument("--workers", type=int, default=available_cores(), metavar="N",
                        help="processes that finish the photos: full-size decode, mask, edges, cut-out, encode, write; "
                             "a quarter as many more decode the network's input (default: one per core, %(default)s "
                             "here; 0: all in this process)")
    add_refine_on(parser, "in the workers")
    parser.add_argument("--overwrite", action="store_true", help="redo photos whose output already exists")
    parser.add_argument("--recursive", action="store_true", help="include subfolders (mirrored in OUT)")
    parser.add_argument("--shard", default="0/1", metavar="I/N", help="process only shard I of N (0-based), for job arrays")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    ray = parser.add_argument_group("Ray Data", "run on Ray (IN and OUT: folders every node sees, or object storage)")
    ray.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                     help="cut out on Ray Data: no ADDRESS starts a local Ray for the run; auto or ray://HOST:10001 "
                          "joins a cluster")
    ray.add_argument("--ray-actors", type=int, metavar="N",
                     help="actors, each holding one model (default: one per GPU, else one per --ray-cpus of the cluster)")
    ray.add_argument("--ray-cpus", type=float, metavar="C", help="CPUs per actor (default 1)")
    ray.add_argument("--ray-gpus", type=float, metavar="G", help="GPUs per actor (default: 1 when the cluster has GPUs)")
    return parser


@contextmanager
def ray_session(args: argparse.Namespace, work: "PhotoWork") -> Iterator[Optional[Callable]]:
    """With ``--ray``: Ray joined (or started) for the run and left after it, and the runner of ``work`` there."""
    if args.ray is None:
        yield None
        return
    from carseg.inference.ray_data import BATCH, connect, run_on_ray

    with connect(args.ray):
        yield lambda jobs: run_on_ray(jobs, work, predictor_kwargs(args), args.batch_size or BATCH, not args.quiet,
                                      args.ray_actors, args.ray_cpus, args.ray_gpus)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_cleanly(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    # here, not at import: --help and option errors answer without loading torch and OpenCV's pipeline (~2 s)
    from carseg.inference.background_removal import SUMMARY_CSV, PhotoWork, check_writable, plan_jobs, remove_backgrounds

    log = lambda line: print(printable(line), file=sys.stderr)
    try:
        if args.batch_size is not None and args.batch_size < 1:
            raise CarsegError(f"--batch-size {args.batch_size}: must be at least 1")
        if args.workers < 0:
            raise CarsegError(f"--workers {args.workers}: must be 0 or more")
        options = cutout_options(vars(args))
        if args.max_megapixels <= 0 or args.max_instances < 1:
            bad = f"--max-megapixels {args.max_megapixels}" if args.max_megapixels <= 0 else f"--max-instances {args.max_instances}"
            raise CarsegError(f"{bad}: must be positive")
        if not 0 <= args.review_below <= 1:
            raise CarsegError(f"--review-below {args.review_below}: must be in [0, 1]")
        check_format(args.format, options.background)
        stored = next((place for place in (args.input, args.output) if object_store(place)), None)
        if stored is not None and args.ray is None:  # the local run forks its workers: object store clients do not fork
            raise CarsegError(f"{stored}: object storage is read and written by --ray runs; add --ray (a local Ray "
                              "is started for the run)")
        jobs, ignored = plan_jobs(args.input, args.output, args.format, args.save_mask, args.recursive, parse_shard(args.shard))
        check_writable(args.output)
        predictor = load_predictor(args, announce=not args.quiet)
        work = PhotoWork(predictor, options, args.format, args.max_megapixels, args.max_instances, args.refine_on)
        batch_size = args.batch_size or predictor.default_batch_size
        with ray_session(args, work) as elsewhere:
            decoders = -(-args.workers // 4)  # a reduced-scale decode costs a tenth of a photo's finish
            summary = remove_backgrounds(jobs, work, batch_size, decoders, args.workers, args.overwrite, progress=not args.quiet,
                                         log=log, summary_csv=args.output / SUMMARY_CSV, review_below=args.review_below,
                                         elsewhere=elsewhere)
    except CarsegError as exc:
        log(f"{PROG}: error: {exc}")
        return 1
    summary.ignored = ignored
    print(summary)
    return 1 if summary.failed else 0
