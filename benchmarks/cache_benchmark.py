#!/usr/bin/env python
"""The training-input cache (``bin/prepare_dataset.py --cache H W``), measured side by side in one run: with and
without it, alternating, printed as ratios.

(a) data path: images/s of one DataLoader worker (``Experiment.get_datasets()``' train dataset, the config's
    augmentations, batch 8, ``num_workers=1``) reading the original photos and masks vs the cache.  goal: >= 5x
    The validation dataset (no augmentation) too: what decoding alone costs.
(b) epochs: the config's short run (``catalyst-dl run CONFIG --set run.train.num_epochs=E``, the config's own
    workers, engine and batch size) without and with ``experiment.cached=true``, from the same seed: wall time of
    the whole run and validation Dice at its end.              goals: no slower; |Dice difference| <= 0.003

    python benchmarks/cache_benchmark.py --data-dir data/real            # configs/real.yml's recipe, 256x384
    python benchmarks/cache_benchmark.py                                 # 40 generated 1918x1280 photos

The cache is built (or found up to date) in DATA_DIR/cache/ first, with the config's image_size and soft_masks;
``--data-dir`` gets ``dataset_{train,valid}.csv`` written by ``bin/prepare_dataset.py``'s split.
"""
import argparse
import contextlib
import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA_GOAL, EPOCH_GOAL, DICE_GOAL = 5.0, 1.0, 0.003
CATALYST_DL = [sys.executable, "-c", "from carseg.commands.catalyst_dl import main; raise SystemExit(main())"]


def experiment_for(config_path: Path, data_dir: Path, cached: bool, sets: Sequence[str] = ()):
    """The config's ``Experiment`` (augmentations built from the YAML) on ``data_dir``'s CSVs."""
    from carseg.compat.hydra import build_with_vars
    from carseg.config import load_configs

    config = load_configs([config_path], [*sets, f"experiment.train_csv={data_dir / 'dataset_train.csv'}",
                                          f"experiment.valid_csv={data_dir / 'dataset_valid.csv'}",
                                          f"experiment.cached={str(cached).lower()}"])
    section = {key: value for key, value in config["experiment"].items() if key != "_var_"}
    return build_with_vars({"experiment": section})["experiment"]


def loader_rate(dataset, batch_size: int) -> float:
    """Images/s one worker delivers over one pass of ``dataset`` (worker start-up and first batch excluded)."""
    from carseg.data.loader import Loader
    from carseg.training.experiment import _worker_init

    loader = Loader(dataset, batch_size=batch_size, shuffle=True, num_workers=1, worker_init_fn=_worker_init)
    batches = iter(loader)
    first = next(batches)
    started, count = time.perf_counter(), 0
    for batch in batches:
        count += len(batch["features"])
    seconds = time.perf_counter() - started
    del batches
    return count / seconds if count else len(first["features"]) / seconds


def bench_data(config_path: Path, data_dir: Path, rounds: int, batch_size: int, sets: Sequence[str]) -> Dict[str, dict]:
    """Per mode (train, valid): images/s per worker for plain and cached, alternating which goes first each round."""
    import torch

    torch.set_num_threads(1)
    datasets = {cached: experiment_for(config_path, data_dir, cached, sets).get_datasets() for cached in (False, True)}
    results = {}
    for mode in ("train", "valid"):
        rates: Dict[bool, List[float]] = {False: [], True: []}
        for r in range(rounds):
            for cached in ((False, True) if r % 2 == 0 else (True, False)):
                rates[cached].append(loader_rate(datasets[cached][mode], batch_size))
        per_round = [c / p for p, c in zip(rates[False], rates[True])]
        results[mode] = {"plain": statistics.median(rates[False]), "cached": statistics.median(rates[True]),
                         "ratio": statistics.median(per_round), "range": (min(per_round), max(per_round)),
                         "n": len(datasets[False][mode])}
    return results


def run_epochs(config_path: Path, data_dir: Path, cached: bool, epochs: int, seed: int, sets: Sequence[str]) -> dict:
    """One short ``catalyst-dl run`` in a new interpreter, as users run it: wall seconds, CPU seconds of the run and
    its loader workers (what other jobs on the machine do not change), and the last validation Dice."""
    with tempfile.TemporaryDirectory(prefix="carseg-cache-bench-") as logdir:
        command = [*CATALYST_DL, "run", "--config", str(config_path), "--logdir", logdir, "--seed", str(seed), "--set",
                   f"run.train.num_epochs={epochs}", f"experiment.train_csv={data_dir / 'dataset_train.csv'}",
                   f"experiment.valid_csv={data_dir / 'dataset_valid.csv'}", f"experiment.cached={str(cached).lower()}",
                   *sets]
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"(b) catalyst-dl run failed ({'cached' if cached else 'plain'}):\n{done.stderr[-3000:]}")
        valid = pd.read_csv(Path(logdir) / "csv_logger" / "valid.csv")
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return {"s": seconds, "cpu": cpu, "dice": float(valid["dice"].iloc[-1])}


def bench_epochs(config_path: Path, data_dir: Path, pairs: int, epochs: int, sets: Sequence[str]) -> dict:
    runs: Dict[bool, List[dict]] = {False: [], True: []}
    for r in range(pairs):
        for cached in ((False, True) if r % 2 == 0 else (True, False)):
            runs[cached].append(run_epochs(config_path, data_dir, cached, epochs, seed=r, sets=sets))
            print(f"    (b) pair {r + 1}, {'cached' if cached else 'plain '}: {runs[cached][-1]['s']:.1f} s, "
                  f"CPU {runs[cached][-1]['cpu']:.1f} s, valid dice {runs[cached][-1]['dice']:.4f}", flush=True)
    per_pair = [p["s"] / c["s"] for p, c in zip(runs[False], runs[True])]
    cpu = {cached: statistics.median(r["cpu"] for r in runs[cached]) for cached in runs}
    dice = [abs(p["dice"] - c["dice"]) for p, c in zip(runs[False], runs[True])]
    return {"plain": statistics.median(r["s"] for r in runs[False]), "cached": statistics.median(r["s"] for r in runs[True]),
            "ratio": statistics.median(per_pair), "range": (min(per_pair), max(per_pair)), "dice": runs, "dice_diff": max(dice),
            "cpu": cpu, "cpu_ratio": statistics.median(p["cpu"] / c["cpu"] for p, c in zip(runs[False], runs[True]))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="Carvana layout (train/, train_masks/); default: generate "
                        "--num-images synthetic 1918x1280 photos in a temporary folder")
    parser.add_argument("--num-images", type=int, default=40, help="generated photos without --data-dir [40]")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "real.yml", help="the recipe [configs/real.yml]")
    parser.add_argument("--set", dest="sets", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides for the config, in (a) and (b) (e.g. experiment.num_workers=2)")
    parser.add_argument("--rounds", type=int, default=3, help="(a) rounds, each timing both, alternating [3]")
    parser.add_argument("--batch-size", type=int, default=8, help="(a) [8]")
    parser.add_argument("--pairs", type=int, default=2, help="(b) pairs of runs [2]")
    parser.add_argument("--epochs", type=int, default=2, help="(b) epochs per run [2]")
    parser.add_argument("--skip-epochs", action="store_true")
    args = parser.parse_args(argv)

    import cv2
    import torch

    from carseg.commands.prepare_dataset import main as prepare

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="carseg-cache-bench-") as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            from carseg.data.synthetic import generate_dataset

            data_dir, views = Path(tmp) / "data", 8
            print(f"generating {-(-args.num_images // views) * views} synthetic 1918x1280 photos in {data_dir} ...", flush=True)
            with contextlib.redirect_stderr(io.StringIO()):
                generate_dataset(data_dir, num_cars=-(-args.num_images // views), views=views, num_test_cars=0,
                                 size=(1918, 1280), seed=0)
        data_dir = data_dir.resolve()
        experiment = experiment_for(args.config, data_dir / "unused", False, args.sets)
        size = list(experiment.image_size)
        cache_args = ["--datapath", str(data_dir), "--cache", *map(str, size), *(["--soft-masks"] if experiment.soft_masks else [])]
        for attempt in ("build", "rerun"):
            started = time.perf_counter()
            if prepare(cache_args) != 0:
                return 1
            print(f"cache {attempt}: {time.perf_counter() - started:.1f} s (bin/prepare_dataset.py {' '.join(cache_args)})",
                  flush=True)
        print(f"{args.config.name}: image_size {size[0]}x{size[1]}, soft_masks {experiment.soft_masks}, "
              f"{len(experiment.train_augmentations)} augmentations; torch {torch.__version__}", flush=True)
        started = time.perf_counter()
        data = bench_data(args.config, data_dir, args.rounds, args.batch_size, args.sets)
        print(f"(a) done in {time.perf_counter() - started:.0f} s", flush=True)
        epochs = None
        if not args.skip_epochs:
            started = time.perf_counter()
            epochs = bench_epochs(args.config, data_dir, args.pairs, args.epochs, args.sets)
            print(f"(b) done in {time.perf_counter() - started:.0f} s", flush=True)

    print(f"\n{'measure':<52}{'value':>10}  {'goal':>9}  status")
    for mode, result in data.items():
        goal = mode == "train"
        status = ("PASS" if result["ratio"] >= DATA_GOAL else "FAIL") if goal else ""
        lo, hi = result["range"]
        print(f"{f'(a) {mode} data path, 1 worker: cached / plain':<52}{result['ratio']:>9.2f}x  "
              f"{'>= %.0fx' % DATA_GOAL if goal else '':>9}  {status}  (per round {lo:.2f}-{hi:.2f}x)")
        print(f"    plain {result['plain']:.1f} images/s, cached {result['cached']:.1f} images/s per worker "
              f"({result['n']} {mode} images, batch {args.batch_size}{', the augmentations' if goal else ''})")
    if epochs:
        lo, hi = epochs["range"]
        status = "PASS" if epochs["ratio"] >= EPOCH_GOAL else "FAIL"
        print(f"{f'(b) {args.epochs}-epoch run: plain / cached wall time':<52}{epochs['ratio']:>9.2f}x  "
              f"{'>= %.1fx' % EPOCH_GOAL:>9}  {status}  (per pair {lo:.2f}-{hi:.2f}x)")
        print(f"    plain {epochs['plain']:.1f} s, cached {epochs['cached']:.1f} s per run (median of {args.pairs}; start-up included)")
        print(f"{'    plain / cached CPU time (run + its workers)':<52}{epochs['cpu_ratio']:>9.2f}x  {'':>9}  "
              f"(plain {epochs['cpu'][False]:.1f} s, cached {epochs['cpu'][True]:.1f} s: other jobs do not change it)")
        status = "PASS" if epochs["dice_diff"] <= DICE_GOAL else "FAIL"
        print(f"{'    valid Dice: max |plain - cached| over pairs':<52}{epochs['dice_diff']:>10.4f}  {'<= %.3f' % DICE_GOAL:>9}  {status}  ("
              + ", ".join(f"{p['dice']:.4f} vs {c['dice']:.4f}" for p, c in zip(epochs["dice"][False], epochs["dice"][True])) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
