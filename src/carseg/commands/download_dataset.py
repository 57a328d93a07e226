"""The Python half of bin/download_dataset.sh: generate drawn cars offline, or (--real) build the real photos.

The script's ``--synthetic`` runs this without ``--real``; ``--real`` assembles the real development set from local
git clones of its public sources (``carseg.data.sources``)."""
import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Set

from carseg.data.sources import KINDS, build
from carseg.data.synthetic import generate_dataset
from carseg.errors import CarsegError, one_line


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1918x1280, got {text!r}") from None
    if min(w, h) < 32:
        raise argparse.ArgumentTypeError(f"both sides must be >= 32, got {text!r}")
    return w, h


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def flagged_names(report: Path) -> Set[str]:
    """The names (file stems) that a saved output of ``../shared/leakcheck/check.py`` flags."""
    try:
        lines = report.read_text().splitlines()
    except OSError as exc:
        raise CarsegError(f"{report}: cannot read it ({exc.strerror}); "
                          "pass the saved output of leakcheck/check.py") from None
    return {Path(line.split("): ", 1)[1]).stem for line in lines if line.startswith("flagged (") and "): " in line}


def real_summary(counts: Counter, out: Path) -> str:
    """One line: photos by kind and split, and the command to run next."""
    parts = [f"{kind} {counts[f'{kind}/train']} train + {counts[f'{kind}/valid']} valid"
             for kind in KINDS if counts[f"{kind}/train"] + counts[f"{kind}/valid"]]
    return (f"real: {sum(counts.values())} photos in {out} ({', '.join(parts)}); "
            f"next: python bin/prepare_dataset.py --datapath {out}")


def _real(args: argparse.Namespace) -> int:
    """``--real`` (build) or ``--write-manifest`` (maintainers); a CarsegError prints one line and returns 1."""
    try:
        if args.write_manifest:
            exclude = sorted(flagged_names(args.exclude_from)) if args.exclude_from else []
            rows = build.write_manifest(args.sources, exclude, args.manifest)
            print(f"manifest: {rows} photos -> {args.manifest} (without {len(exclude)} flagged names); "
                  f"next: bash bin/download_dataset.sh --real --sources {args.sources}")
        else:
            out = args.data_dir or Path("data/general")
            print(real_summary(build.build(args.sources, out, args.only, args.manifest), out))
    except (CarsegError, OSError) as exc:
        print(f"download_dataset: error: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: generate or build the dataset; prints one summary line (or one error line, exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m carseg.commands.download_dataset", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="output folder (default: data; with --real data/general)")
    parser.add_argument("--num-cars", type=_count(0), default=60, help="training cars (default: 60)")
    parser.add_argument("--views", type=_count(1), default=8, help="photos per car (default: 8)")
    parser.add_argument("--num-test-cars", type=_count(0), default=4, help="held-out cars in test/ (default: 4)")
    parser.add_argument("--size", type=_size, default=(1918, 1280), help="WIDTHxHEIGHT (default: 1918x1280)")
    parser.add_argument("--seed", type=_count(0), default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", type=_count(1), default=None, help="threads (default: CPU count, at most 8)")
    real = parser.add_argument_group("real photos from public sources")
    mode = real.add_mutually_exclusive_group()
    mode.add_argument("--real", action="store_true", help="assemble the photos of --manifest from the clones in --sources")
    mode.add_argument("--write-manifest", action="store_true",
                      help="maintainers: list every usable photo of the clones with its hash in --manifest")
    real.add_argument("--sources", type=Path, default=Path("sources"), help="folder with the git clones (default: sources)")
    real.add_argument("--only", action="append", choices=list(build.SOURCES), metavar="NAME",
                      help=f"with --real: only this source (repeatable): {', '.join(build.SOURCES)}")
    real.add_argument("--exclude-from", type=Path, metavar="FILE",
                      help="with --write-manifest: leave out the photos flagged in FILE (output of leakcheck/check.py)")
    real.add_argument("--manifest", type=Path, default=build.MANIFEST, help="photos with hashes (default: the package's)")
    args = parser.parse_args(argv)
    if args.only and not args.real:
        parser.error("--only only applies with --real")
    if args.exclude_from and not args.write_manifest:
        parser.error("--exclude-from only applies with --write-manifest")
    if args.real or args.write_manifest:
        return _real(args)
    data_dir = args.data_dir or Path("data")
    try:
        counts = generate_dataset(data_dir, args.num_cars, args.views, args.num_test_cars, args.size,
                                  args.seed, args.workers)
    except OSError as exc:
        print(f"synthetic: cannot write {exc.filename or data_dir}: {exc.strerror or exc}; "
              "choose a writable --data-dir", file=sys.stderr)
        return 1
    print(f"synthetic: {counts['train_images']} train + {counts['test_images']} test images in {data_dir} "
          f"({counts['written']} written, {counts['skipped']} already there)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
