#!/usr/bin/env python
"""Ray's overhead on one machine: the same photos cut out by the local run and by ``--ray`` (a local Ray started for
the run, one actor per core, 8 photos per task), side by side in one run, alternating; photos/s as each run prints it (the local run's
clock starts at its first photo's decode, the Ray run's when its dataset starts: actor start-up and model loading
included), wall time of the whole command, and the outputs compared (mask IoU per photo, file sizes).
Goal (issue 21): --ray >= 0.8x the local photos/s, masks identical up to IoU 0.999.

    python benchmarks/ray_benchmark.py --images DIR --count 200      # e.g. 1918x1280 Carvana photos
    python benchmarks/ray_benchmark.py                               # generated 1918x1280 photos
"""
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_speed_benchmark import photo_set, run_cli, side_by_side_parser  # noqa: E402
from inference_benchmark import agreement, wait_for_quiet  # noqa: E402

CLI = Path(__file__).resolve().parents[1] / "bin" / "car_segmentation.py"
GOAL, IOU_GOAL = 0.8, 0.999


def main(argv: Optional[List[str]] = None) -> int:
    args = side_by_side_parser(__doc__, count=200).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        tmp = Path(tmp)
        photos = photo_set(args.images, args.count, tmp)
        variants = {"local": (), "ray": ("--ray",)}
        best: Dict[str, Dict] = {}
        for round_ in range(args.rounds):
            for name in (list(variants) if round_ % 2 == 0 else list(reversed(variants))):
                started = time.perf_counter()
                wait_for_quiet(args.quiet_wait)  # not quietly(): Ray's own daemons would count as other processes
                result = run_cli(CLI, None, tmp / "in", tmp / f"out-{name}", *variants[name])
                result["wall"] = time.perf_counter() - started
                print(f"  round {round_ + 1} {name}: {result['rate']:.2f} photos/s, {result['wall']:.1f} s", flush=True)
                if name not in best or result["rate"] > best[name]["rate"]:
                    best[name] = result
        names = [p.with_suffix(".png").name for p in photos]
        same = agreement(tmp / "out-ray", tmp / "out-local", names)
    print(f"\n{args.count} photos ({'generated' if args.images is None else args.images}), built-in model\n")
    print("| run | photos/s | command wall s | peak PSS MB | PNG MB |")
    print("|---|---|---|---|---|")
    for name, result in best.items():
        print(f"| {name} | {result['rate']:.2f} | {result['wall']:.1f} | {result['pss'] / 2**20:.0f} | {result['bytes'] / 2**20:.1f} |")
    ratio = best["ray"]["rate"] / best["local"]["rate"]
    print(f"\n--ray / local: {ratio:.2f}x photos/s (goal >= {GOAL}x); worst mask IoU {same['min_iou']:.4f} "
          f"(goal >= {IOU_GOAL}); PNG bytes {best['ray']['bytes'] / best['local']['bytes']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
