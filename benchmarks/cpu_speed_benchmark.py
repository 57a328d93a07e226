#!/usr/bin/env python
"""CPU speed of batch background removal: the default path against --precision fp32 and against the path of an
earlier commit ("today's path" before the CPU-speed work), side by side in one run, on the same photos.

For each variant, ``bin/car_segmentation.py IN OUT --quiet`` runs as users run it (all cores, the built-in model
by default); the variants take turns, in alternating order, and each keeps its better run:
    default      this checkout, --precision auto (bf16 where the CPU has AVX-512 BF16 or AMX)
    fp32         this checkout, --precision fp32
    baseline     the CLI of --baseline REV (a git worktree of it, run with this checkout's Python environment)
Printed: photos/s, peak memory of the process tree (summed PSS), PNG bytes, the worst per-photo mask IoU of each
variant's cut-outs against fp32's (alpha > 0), and CPU ms per photo of each stage on one thread (default vs fp32).
Goals (issue 22): default >= 1.6x the baseline's photos/s, every mask IoU >= 0.995, PNGs <= 1.3x the baseline's.

    python benchmarks/cpu_speed_benchmark.py --images DIR          # 1918x1280 JPEGs, e.g. Carvana photos
    python benchmarks/cpu_speed_benchmark.py                       # 40 generated 1918x1280 photos
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_benchmark import PeakMemory, agreement, link_photos, quietly  # noqa: E402

from carseg.data.images import encode_image, read_image  # noqa: E402
from carseg.data.synthetic import generate_dataset  # noqa: E402
from carseg.inference.predictor import Predictor  # noqa: E402
from carseg.inference.step import cut_out  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEED_GOAL, IOU_GOAL, PNG_GOAL = 1.6, 0.995, 1.3
BASELINE = "6c8402b"  # main before the foundation and CPU-speed work (2026-12-04): fp32, RGB kept under alpha 0


def run_cli(script: Path, src: Optional[Path], in_dir: Path, out_dir: Path, *extra: str) -> Dict:
    """One CLI run: its own photos/s, peak PSS of its process tree and the bytes it wrote."""
    shutil.rmtree(out_dir, ignore_errors=True)
    env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    process = subprocess.Popen([sys.executable, str(script), str(in_dir), str(out_dir), "--quiet", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = PeakMemory(process.pid, interval=1.0)  # reading every process's smaps costs CPU: Ray runs ~10 processes
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.done.set()
    sampler.join()
    match = re.search(r"done (\d+), .* failed (\d+).*\(([\d.]+) images/s\)", stdout)
    if process.returncode != 0 or not match or int(match.group(2)):
        raise SystemExit(f"{script} failed ({process.returncode}):\n{stdout}\n{stderr[-2000:]}")
    pngs = list(out_dir.glob("*.png"))
    return {"rate": float(match.group(3)), "pss": sampler.peak_pss, "bytes": sum(p.stat().st_size for p in pngs)}


def side_by_side_parser(doc: str, count: int) -> argparse.ArgumentParser:
    """The options of a benchmark that runs the CLI's variants side by side on the same photos."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="folder of JPEG photos (default: generated 1918x1280 photos)")
    parser.add_argument("--count", type=int, default=count, help=f"photos per run (default {count})")
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant; the best counts (default 2)")
    parser.add_argument("--quiet-wait", type=float, default=120, help="seconds to wait for other processes to finish")
    return parser


def photo_set(images: Optional[Path], count: int, tmp: Path) -> List[Path]:
    """``count`` photos in ``tmp/in``: links to the JPEGs of ``images``, or generated 1918x1280 photos."""
    if images is None:
        generate_dataset(tmp / "data", num_cars=max(1, count // 4), views=4, num_test_cars=0, size=(1918, 1280), seed=0)
        sources = sorted((tmp / "data" / "train").glob("*.jpg"))
    else:
        sources = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    return link_photos(sources, tmp / "in", count)


def stages(photos: List[Path], precision: str) -> Dict[str, float]:
    """Median CPU ms per photo of each stage on one thread, in-process (the forward pass in the CLI's batches)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    predictor = Predictor(precision=precision, device="cpu")
    batch = predictor.default_batch_size
    times: Dict[str, List[float]] = {}

    def timed(stage: str, fn: Callable, per: int = 1):
        started = time.perf_counter()
        result = fn()
        times.setdefault(stage, []).append(1000 * (time.perf_counter() - started) / per)
        return result

    predictor.forward([predictor.read(photos[0])] * batch)  # warm-up: TorchScript optimises on the first calls
    for path in photos:
        item = timed("network input", lambda: predictor.read(path))
        prob = timed("model forward", lambda: predictor.forward([item] * batch), per=batch)[0]
        image = timed("decode", lambda: read_image(path))
        cut = timed("cut-out", lambda: cut_out(predictor, image, prob))
        timed("PNG encode", lambda: encode_image(cut.pictures[0], "png", in_place=True))
    return {stage: statistics.median(values) for stage, values in times.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = side_by_side_parser(__doc__, count=40)
    parser.add_argument("--baseline", default=BASELINE, help=f"the earlier commit to compare with (default {BASELINE})")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cpu-speed-") as tmp:
        tmp = Path(tmp)
        photos = photo_set(args.images, args.count, tmp)
        worktree = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(worktree), args.baseline], check=True)
        try:
            variants = {"default": (ROOT / "bin" / "car_segmentation.py", None, ()),
                        "fp32": (ROOT / "bin" / "car_segmentation.py", None, ("--precision", "fp32")),
                        "baseline": (worktree / "bin" / "car_segmentation.py", worktree / "src", ())}
            best: Dict[str, Dict] = {}
            for round_ in range(args.rounds):
                for name in (list(variants) if round_ % 2 == 0 else list(reversed(variants))):
                    script, src, extra = variants[name]
                    result = quietly(lambda: run_cli(script, src, tmp / "in", tmp / f"out-{name}", *extra), args.quiet_wait)
                    print(f"  round {round_ + 1} {name}: {result['rate']:.2f} photos/s", flush=True)
                    if name not in best or result["rate"] > best[name]["rate"]:
                        best[name] = result
            names = [p.with_suffix(".png").name for p in photos]
            ious = {name: agreement(tmp / f"out-{name}", tmp / "out-fp32", names)["min_iou"] for name in ("default", "baseline")}
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
        per_stage = {precision: stages(photos[:8], precision) for precision in ("auto", "fp32")}

    base = best["baseline"]
    print(f"\n{args.count} photos ({'generated' if args.images is None else args.images}), built-in model, "
          f"{os.cpu_count()} cores\n")
    print("| variant | photos/s | vs baseline | peak PSS MB | PNG MB | worst mask IoU vs fp32 |")
    print("|---|---|---|---|---|---|")
    for name, result in best.items():
        iou = "1 (itself)" if name == "fp32" else f"{ious[name]:.4f}"
        print(f"| {name} | {result['rate']:.2f} | {result['rate'] / base['rate']:.2f}x | {result['pss'] / 2**20:.0f} | "
              f"{result['bytes'] / 2**20:.1f} | {iou} |")
    print("\nCPU ms per photo, one thread (median of 8 photos):\n")
    print("| stage | default | fp32 |")
    print("|---|---|---|")
    for stage in per_stage["auto"]:
        print(f"| {stage} | {per_stage['auto'][stage]:.1f} | {per_stage['fp32'][stage]:.1f} |")
    print(f"| total | {sum(per_stage['auto'].values()):.1f} | {sum(per_stage['fp32'].values()):.1f} |")
    speed, size = best["default"]["rate"] / base["rate"], best["default"]["bytes"] / base["bytes"]
    print(f"\ndefault vs baseline: {speed:.2f}x photos/s (goal >= {SPEED_GOAL}x), PNG bytes {size:.2f}x (goal <= {PNG_GOAL}x); "
          f"default vs fp32: {best['default']['rate'] / best['fp32']['rate']:.2f}x; worst IoU vs fp32 {ious['default']:.4f} "
          f"(goal >= {IOU_GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
