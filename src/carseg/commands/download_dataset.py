"""The offline half of ``bin/download_dataset.sh --synthetic``: generate drawn cars in the Carvana layout."""
import argparse
import sys
from pathlib import Path

from carseg.data.synthetic import generate_dataset


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


def main(argv: list[str] | None = None) -> int:
    """CLI: generate the dataset; prints one summary line (or one error line, exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m carseg.commands.download_dataset", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="output folder (default: data)")
    parser.add_argument("--num-cars", type=_count(0), default=60, help="training cars (default: 60)")
    parser.add_argument("--views", type=_count(1), default=8, help="photos per car (default: 8)")
    parser.add_argument("--num-test-cars", type=_count(0), default=4, help="held-out cars in test/ (default: 4)")
    parser.add_argument("--size", type=_size, default=(1918, 1280), help="WIDTHxHEIGHT (default: 1918x1280)")
    parser.add_argument("--seed", type=_count(0), default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", type=_count(1), default=None, help="threads (default: CPU count, at most 8)")
    args = parser.parse_args(argv)
    try:
        counts = generate_dataset(args.data_dir, args.num_cars, args.views, args.num_test_cars, args.size,
                                  args.seed, args.workers)
    except OSError as exc:
        print(f"synthetic: cannot write {exc.filename or args.data_dir}: {exc.strerror or exc}; "
              "choose a writable --data-dir", file=sys.stderr)
        return 1
    print(f"synthetic: {counts['train_images']} train + {counts['test_images']} test images in {args.data_dir} "
          f"({counts['written']} written, {counts['skipped']} already there)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
