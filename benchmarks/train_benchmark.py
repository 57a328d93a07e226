#!/usr/bin/env python
"""Training-side speed, measured side by side in one run and printed as ratios.

(a) data: per-sample cost of this project's training data path (``SegmentationDataset`` with
    ``Experiment(...).get_transforms(mode)``: reduced-scale JPEG decode, mask resized in PIL) vs
    the Catalyst segmentation tutorial's path (imageio full decode of the JPEG and the GIF mask,
    then LongestMaxSize + PadIfNeeded + Normalize + ToTensorV2). Items are read directly
    (num_workers=0), each path in its own freshly forked process, as a DataLoader worker runs
    it: 1 torch thread, 1 cv2 thread, the allocator state of that path alone.  goal: >= 2.5x
(b) loop: one epoch (train + valid) through Catalyst's SupervisedRunner with CPUEngine and the
    demo config's metric callbacks vs a plain PyTorch loop doing the same work (forward, loss,
    backward, step, Dice/IoU) on the same in-memory batches: framework overhead.  goal: <= 1.10x
(c) additions: the same Catalyst epoch written to a logdir (CSV + TensorBoard loggers, checkpoints,
    as every `catalyst-dl run`) with vs without the PredictionPreviewCallback every config carries
    (a grid of 4 valid samples -> LOGDIR/previews/*.png + TensorBoard), alternating pairs; and the
    one-off cost of the training curves (`catalyst-dl plot`, run once at the end of a run).
                                                                              goal: <= 1.05x
(d) precision: configs/real.yml's model (ResNet-18 U-Net, channels-last) trained through Catalyst with
    its engine's ``bf16: true`` (bfloat16 autocast) vs fp32, from the same weights on the same
    256x384 batches, alternating epochs, 2 torch threads, wall time.           goal: >= 1.5x

(e) engines, when CUDA is present: configs/general.yml's model trained a few epochs from the cache
    (``prepare_dataset.py --cache``) under GPUEngine fp32, fp16 AMP, bf16 and DDP (world size 1, in this process),
    from configs/engines/*.yml: images/s, peak GPU memory, validation Dice; and configs/real.yml's recipe at 256x384.
    goals: real recipe >= 400 images/s at 256x384; AMP >= 1.5x fp32 at 512x768 with Dice within 0.005. Without CUDA
    one line says it is skipped.

    python benchmarks/train_benchmark.py                    # generates 40 synthetic 1918x1280 photos
    python benchmarks/train_benchmark.py --data-dir data    # Carvana layout: train/*.jpg, train_masks/*_mask.gif
"""
import argparse
import contextlib
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import albumentations as A
import cv2
import imageio.v2 as imageio
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from carseg.training.callbacks import PredictionPreviewCallback
from carseg.training.curves import plot_curves
from carseg.data.dataset import SegmentationDataset
from carseg.data.images import image_size, read_image, read_mask
from carseg.data.pairs import pair_by_name
from carseg.config import load_configs
from carseg.errors import CarsegError
from carseg.export.trace import build_model
from carseg.compat.engines import CPUEngine
from carseg.training.experiment import Experiment, _worker_init
from carseg.training.losses import BCEDiceLoss
from carseg.training.models.unet import UNet

DATA_GOAL, LOOP_GOAL, ADDITIONS_GOAL, PRECISION_GOAL, MIN_MASK_IOU = 2.5, 1.10, 1.05, 1.5, 0.98
RECIPE_GOAL, AMP_GOAL, AMP_DICE_GOAL = 400, 1.5, 0.005  # (e), issue 26: images/s at 256x384; AMP / fp32 at 512x768
STEPS = ("image", "mask", "transforms")


# ----------------------------------------------------------------------------- (a) data path
class TutorialDataset(Dataset):
    """The Catalyst segmentation tutorial's dataset: full imageio decode of image and mask."""

    def __init__(self, images: Sequence[Path], masks: Sequence[Path], transforms: A.Compose):
        self.images, self.masks, self.transforms = list(images), list(masks), transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        image = imageio.imread(self.images[idx])
        mask = imageio.imread(self.masks[idx])
        if mask.ndim == 3:  # imageio returns a palette GIF as RGB
            mask = mask[..., 0]
        sample = self.transforms(image=image, mask=mask)
        # Same output contract as ours, so both do the same work downstream.
        return {"features": sample["image"], "targets": (sample["mask"] > 0).unsqueeze(0).float()}


def tutorial_transforms(image_hw: Tuple[int, int]) -> A.Compose:
    height, width = image_hw
    return A.Compose([
        A.LongestMaxSize(max_size=max(image_hw)),
        A.PadIfNeeded(height, width, border_mode=cv2.BORDER_CONSTANT),
        A.Normalize(),
        ToTensorV2(),
    ])


# The breakdowns: each ``__getitem__`` one call at a time -> (item, CPU seconds of each of STEPS).
# check_outputs() verifies that both still return exactly what ``__getitem__`` does.
def our_steps(ds: SegmentationDataset, idx: int) -> Tuple[Dict[str, torch.Tensor], List[float]]:
    image_path, mask_path = Path(ds.images[idx]), Path(ds.masks[idx])
    t = [time.process_time()]
    image = read_image(image_path, target_hw=ds.decode_hw, full_hw=image_size(mask_path))
    t.append(time.process_time())
    mask = read_mask(mask_path, out_hw=image.shape[:2])
    t.append(time.process_time())
    sample = ds.transforms(image=image, mask=mask)
    item = {"features": sample["image"], "targets": sample["mask"].unsqueeze(0).float()}
    t.append(time.process_time())
    return item, [b - a for a, b in zip(t, t[1:])]


def tutorial_steps(ds: TutorialDataset, idx: int) -> Tuple[Dict[str, torch.Tensor], List[float]]:
    t = [time.process_time()]
    image = imageio.imread(ds.images[idx])
    t.append(time.process_time())
    mask = imageio.imread(ds.masks[idx])
    mask = mask[..., 0] if mask.ndim == 3 else mask
    t.append(time.process_time())
    sample = ds.transforms(image=image, mask=mask)
    item = {"features": sample["image"], "targets": (sample["mask"] > 0).unsqueeze(0).float()}
    t.append(time.process_time())
    return item, [b - a for a, b in zip(t, t[1:])]


STEP_FNS = {"ours": our_steps, "tutorial": tutorial_steps}


def our_dataset(pairs, image_hw, mode: str) -> SegmentationDataset:
    """The project's dataset with ``Experiment(...).get_transforms(mode)``, as get_datasets builds it."""
    experiment = Experiment(train_csv="unused.csv", valid_csv="unused.csv", image_size=list(image_hw))
    frame = pd.DataFrame({"image": [str(i) for i, _ in pairs], "mask": [str(m) for _, m in pairs]})
    return SegmentationDataset(frame, experiment.get_transforms(mode), experiment.image_size)


def make_dataset(name: str, pairs, image_hw, mode: str) -> Dataset:
    if name == "tutorial":
        return TutorialDataset([i for i, _ in pairs], [m for _, m in pairs], tutorial_transforms(image_hw))
    return our_dataset(pairs, image_hw, mode)


def full_pass(dataset: Dataset) -> Tuple[float, float]:
    """(CPU seconds, wall seconds) per sample for one pass over the dataset's items (no DataLoader).

    The process is single-threaded here, so its CPU time is the per-sample cost, and unlike
    wall time it does not grow when other jobs on the machine take the core away.
    """
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return (time.process_time() - cpu) / len(dataset), (time.perf_counter() - wall) / len(dataset)


def breakdown(name: str, dataset: Dataset) -> Dict[str, float]:
    """Median CPU ms per sample of each of ``STEPS``."""
    times = [STEP_FNS[name](dataset, i)[1] for i in range(len(dataset))]
    return {step: 1e3 * statistics.median(col) for step, col in zip(STEPS, zip(*times))}


def check_outputs(pairs, image_hw, mode: str) -> str:
    """Same shapes and dtypes as the tutorial's, masks agree closely; the step functions == ``__getitem__``."""
    datasets = {name: make_dataset(name, pairs, image_hw, mode) for name in STEP_FNS}
    ious, diffs = [], []
    for i in range(min(len(pairs), 8)):
        a, b = datasets["ours"][i], datasets["tutorial"][i]
        for key in ("features", "targets"):
            if a[key].shape != b[key].shape or a[key].dtype != b[key].dtype:
                raise SystemExit(f"output mismatch for {key}: ours {a[key].shape} {a[key].dtype}, "
                                 f"tutorial {b[key].shape} {b[key].dtype}")
        for name, item in (("ours", a), ("tutorial", b)):
            stepwise = STEP_FNS[name](datasets[name], i)[0]
            if any(not torch.equal(item[key], stepwise[key]) for key in item):
                raise SystemExit(f"{STEP_FNS[name].__name__}() no longer matches {name}'s __getitem__ (item {i})")
        ma, mb = a["targets"], b["targets"]
        ious.append(float((ma * mb).sum() / ((ma + mb).clamp(max=1).sum() + 1e-9)))
        diffs.append(float((a["features"] - b["features"]).abs().mean()))
    if min(ious) < MIN_MASK_IOU:
        raise SystemExit(f"masks differ from the tutorial's: IoU {min(ious):.4f} < {MIN_MASK_IOU}")
    return (f"outputs: same shapes/dtypes; mask IoU ours vs tutorial >= {min(ious):.4f}; mean |features ours - "
            f"tutorial| {statistics.mean(diffs):.3f} (INTER_AREA from the 1/4-scale decode vs INTER_LINEAR)")


def _data_child(conn, name, pairs, image_hw, mode, passes, with_breakdown) -> None:
    """One data path in a fresh forked process, as in a DataLoader worker; sends its timings."""
    try:
        cv2.setNumThreads(1)
        torch.set_num_threads(1)  # what DataLoader does in each worker
        if name == "ours":
            _worker_init(0)  # the Experiment's own loader-worker setup
        dataset = make_dataset(name, pairs, image_hw, mode)
        full_pass(dataset)  # warm-up: page cache, first-call costs, allocator
        cpu, wall = min(full_pass(dataset) for _ in range(passes))
        parts = breakdown(name, dataset) if with_breakdown else None
        conn.send({"cpu": cpu, "wall": wall, "breakdown": parts})
    except BaseException as exc:  # report, never hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_child(*args) -> dict:
    ctx = multiprocessing.get_context("fork")  # how DataLoader starts workers on Linux
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_data_child, args=(child, *args))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    if "error" in result:
        raise SystemExit(f"(a) {args[0]}: {result['error']}")
    return result


def bench_data(pairs, image_hw, mode: str, rounds: int, passes: int) -> dict:
    """Each round times both paths, each in its own fresh forked process, alternating which goes first."""
    results = {"ours": [], "tutorial": []}
    for r in range(rounds):
        for name in (("ours", "tutorial") if r % 2 == 0 else ("tutorial", "ours")):
            results[name].append(run_child(name, pairs, image_hw, mode, passes, r == rounds - 1))
    ms = {name: 1e3 * statistics.median(x["cpu"] for x in v) for name, v in results.items()}
    per_round = [t["cpu"] / o["cpu"] for t, o in zip(results["tutorial"], results["ours"])]
    return {
        "ms": ms,
        "wall_ms": {name: 1e3 * statistics.median(x["wall"] for x in v) for name, v in results.items()},
        "ratio": ms["tutorial"] / ms["ours"],
        "ratio_range": (min(per_round), max(per_round)),
        "breakdown": {name: v[-1]["breakdown"] for name, v in results.items()},
        "check": check_outputs(pairs, image_hw, mode),
    }


# ----------------------------------------------------------------------------- (b) training loop
def build_batches(dataset: Dataset, batch_size: int, count: int) -> List[Dict[str, torch.Tensor]]:
    """``count`` batches from the dataset's samples (cycled if there are too few)."""
    samples = [dataset[i] for i in range(min(len(dataset), batch_size * count))]
    batches = []
    for b in range(count):
        items = [samples[(b * batch_size + k) % len(samples)] for k in range(batch_size)]
        batches.append({key: torch.stack([it[key] for it in items]) for key in ("features", "targets")})
    return batches


def _first(items):
    return items[0]


def make_loaders(train, valid) -> "OrderedDict[str, DataLoader]":
    """Plain DataLoaders yielding the pre-built batches (batch_size=1 of a batch: Catalyst needs a batch_sampler)."""
    return OrderedDict(  # a list of batches is a map-style dataset; each item is one whole batch
        (name, DataLoader(batches, batch_size=1, collate_fn=_first, shuffle=False, num_workers=0))
        for name, batches in (("train", train), ("valid", valid))
    )


def _stats(probs: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5):
    pred = (probs > threshold).float()
    tp = (pred * targets).sum()
    fp = (pred * (1 - targets)).sum()
    fn = ((1 - pred) * targets).sum()
    return tp, fp, fn


def plain_epoch(model, criterion, optimizer, loaders) -> Dict[str, float]:
    """What the Catalyst run does, by hand: train + valid, loss and Dice/IoU (batch + epoch)."""
    metrics = {}
    eps = 1e-7
    for name, loader in loaders.items():
        train = name == "train"
        model.train(train)
        loss_sum, n, tp_sum, fp_sum, fn_sum = 0.0, 0, 0.0, 0.0, 0.0
        with torch.set_grad_enabled(train):
            for batch in loader:
                logits = model(batch["features"])
                loss = criterion(logits, batch["targets"])
                if train:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                with torch.no_grad():
                    probs = torch.sigmoid(logits)
                    tp, fp, fn = _stats(probs, batch["targets"])
                    batch_dice = float(2 * tp / (2 * tp + fp + fn + eps))  # logged per batch, like Catalyst
                    batch_iou = float(tp / (tp + fp + fn + eps))
                    tp_sum, fp_sum, fn_sum = tp_sum + float(tp), fp_sum + float(fp), fn_sum + float(fn)
                bs = batch["features"].shape[0]
                loss_sum, n = loss_sum + float(loss) * bs, n + bs
        metrics[name] = {"loss": loss_sum / n, "dice": 2 * tp_sum / (2 * tp_sum + fp_sum + fn_sum + eps),
                         "iou": tp_sum / (tp_sum + fp_sum + fn_sum + eps), "last_batch": (batch_dice, batch_iou)}
    return metrics


def catalyst_epoch(model, criterion, optimizer, loaders, logdir: Optional[str] = None,
                   previews: bool = False, bf16: bool = False) -> Dict[str, Dict[str, float]]:
    from catalyst import dl

    runner = dl.SupervisedRunner(input_key="features", output_key="logits", target_key="targets", loss_key="loss")
    callbacks = [  # as in configs/demo.yml
        dl.BatchTransformCallback(transform=torch.sigmoid, scope="on_batch_end", input_key="logits", output_key="probs"),
        dl.DiceCallback(input_key="probs", target_key="targets", threshold=0.5),
        dl.IOUCallback(input_key="probs", target_key="targets", threshold=0.5),
    ]
    if previews:
        callbacks.append(PredictionPreviewCallback(loader_key="valid", num_images=4))  # as in every config
    runner.train(model=model, criterion=criterion, optimizer=optimizer, loaders=loaders, callbacks=callbacks,
                 engine=CPUEngine(bf16=bf16), num_epochs=1, logdir=logdir, valid_loader="valid", valid_metric="loss",
                 minimize_valid_metric=True, verbose=False, timeit=False)
    return {name: dict(runner.epoch_metrics[name]) for name in loaders}


def bench_loop(dataset, args) -> dict:
    torch.manual_seed(0)
    train = build_batches(dataset, args.batch_size, args.train_batches)
    valid = build_batches(dataset, args.batch_size, args.valid_batches)
    loaders = make_loaders(train, valid)
    models = {
        "unet": lambda: UNet(base_channels=args.base_channels, depth=4),
        # Near-zero compute: what is left is the framework's own cost (plus the shared loss/metrics).
        "tiny": lambda: torch.nn.Conv2d(3, 1, 1),
    }
    inits = {name: make().state_dict() for name, make in models.items()}

    curves_s: List[float] = []

    def run(kind: str, arch: str = "unet"):
        """One epoch of ``kind``: plain, catalyst, logged (catalyst + logdir) or previews (logged + preview callback)."""
        torch.set_num_threads(args.threads)
        model = models[arch]()
        model.load_state_dict(inits[arch])
        criterion = BCEDiceLoss()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        with tempfile.TemporaryDirectory(prefix="carseg-bench-logs-") as logdir, \
                contextlib.redirect_stdout(io.StringIO()):  # Catalyst's console logger; same sink for all
            cpu, wall = time.process_time(), time.perf_counter()
            if kind == "plain":
                metrics = plain_epoch(model, criterion, optimizer, loaders)
            else:
                metrics = catalyst_epoch(model, criterion, optimizer, loaders, logdir=None if kind == "catalyst" else logdir,
                                         previews=kind == "previews")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if kind == "previews":
                if not (Path(logdir) / "previews" / "epoch_001.png").is_file():
                    raise SystemExit("(c) the preview callback wrote no LOGDIR/previews/epoch_001.png")
                started = time.perf_counter()
                plot_curves(Path(logdir))
                curves_s.append(time.perf_counter() - started)
        if torch.get_num_threads() != args.threads:
            raise SystemExit(f"{kind} changed torch threads to {torch.get_num_threads()}")
        # One thread: CPU time is the cost and ignores other jobs on the box. More threads: CPU time
        # would count OpenMP spin-waits, so wall time it is.
        return (cpu if args.threads == 1 else wall), metrics

    def alternate(arch: str, pairs: int, kinds: Tuple[str, str] = ("plain", "catalyst")) -> Dict[str, List[float]]:
        times: Dict[str, List[float]] = {kind: [] for kind in kinds}
        for r in range(pairs):
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                times[kind].append(run(kind, arch)[0])
        return times

    # Warm-up (one-time imports, allocator, oneDNN kernels), and proof that both did the same work.
    (_, plain_m), (_, cat_m) = run("plain"), run("catalyst")
    agree = max(abs(plain_m[ld][k] - cat_m[ld][k]) for ld in loaders for k in ("loss", "dice", "iou"))
    times = alternate("unet", args.loop_repeats)
    tiny = alternate("tiny", max(args.loop_repeats, 5))
    run("previews")  # warm-up: TensorBoard writer, PNG encoder, matplotlib
    added = alternate("unet", args.loop_repeats, ("logged", "previews"))
    added_per_pair = [p / g for p, g in zip(added["previews"], added["logged"])]
    # The callback's cost is ~0.1 s, within the UNet epoch's run-to-run noise: measure it on the
    # 1x1-conv model too, where little else happens, and relate it to the UNet epoch.
    added_tiny = alternate("tiny", max(args.loop_repeats, 5), ("logged", "previews"))
    added_ms = 1e3 * statistics.median(p - g for p, g in zip(added_tiny["previews"], added_tiny["logged"]))
    per_pair = [c / p for c, p in zip(times["catalyst"], times["plain"])]
    summary = ", ".join(f"{ld} loss {plain_m[ld]['loss']:.4f} dice {plain_m[ld]['dice']:.4f} iou {plain_m[ld]['iou']:.4f}"
                        for ld in loaders)
    return {
        "timer": "process CPU time" if args.threads == 1 else "wall time",
        "s": {k: statistics.median(v) for k, v in times.items()},
        "ratio": statistics.median(per_pair),
        "ratio_range": (min(per_pair), max(per_pair)),
        "batches": len(train) + len(valid),
        "overhead_ms": 1e3 * statistics.median(c - p for c, p in zip(tiny["catalyst"], tiny["plain"])),
        "tiny_plain_ms": 1e3 * statistics.median(tiny["plain"]),
        "check": f"metrics plain vs catalyst: max |diff| {agree:.2e} ({summary})",
        "added_s": {k: statistics.median(v) for k, v in added.items()},
        "added_ratio": statistics.median(added_per_pair),
        "added_range": (min(added_per_pair), max(added_per_pair)),
        "added_ms": added_ms,
        "added_share": 1 + added_ms / (1e3 * statistics.median(added["logged"])),
        "curves_s": statistics.median(curves_s),
    }


# ----------------------------------------------------------------------------- (d) precision
def bench_precision(dataset, args) -> dict:
    """Alternating fp32 / bf16 Catalyst epochs of configs/real.yml's model, wall time on 2 threads."""
    path = Path(__file__).resolve().parents[1] / "configs" / "real.yml"
    config = load_configs([path])
    torch.manual_seed(0)
    train = build_batches(dataset, args.batch_size, args.precision_batches)
    valid = build_batches(dataset, args.batch_size, 2)
    loaders = make_loaders(train, valid)
    init = build_model(config, path).state_dict()

    def run(bf16: bool):
        torch.set_num_threads(2)
        model = build_model(config, path)
        model.load_state_dict(init)
        model = model.to(memory_format=torch.channels_last)  # as ChannelsLastCallback does
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.perf_counter()
            metrics = catalyst_epoch(model, BCEDiceLoss(), optimizer, loaders, bf16=bf16)
            return time.perf_counter() - started, metrics

    run(False), run(True)  # warm-up: oneDNN kernels for both precisions
    times: Dict[bool, List[float]] = {False: [], True: []}
    metrics = {}
    for r in range(args.loop_repeats):
        for bf16 in ((False, True) if r % 2 == 0 else (True, False)):
            seconds, metrics[bf16] = run(bf16)
            times[bf16].append(seconds)
    per_pair = [f / b for f, b in zip(times[False], times[True])]
    return {"s": {k: statistics.median(v) for k, v in times.items()}, "ratio": statistics.median(per_pair),
            "ratio_range": (min(per_pair), max(per_pair)), "batches": len(train) + len(valid),
            "check": " vs ".join(f"{name} train loss {metrics[b]['train']['loss']:.4f}, valid dice {metrics[b]['valid']['dice']:.4f}"
                                 for name, b in (("fp32", False), ("bf16", True)))}


# ----------------------------------------------------------------------------- (e) GPU engines
ENGINES_DIR = Path(__file__).resolve().parents[1] / "configs" / "engines"


def engine_variants(device: str) -> "OrderedDict[str, dict]":
    """Engine params per variant, from ``configs/engines/*.yml`` as a user overlays them: on ``cuda`` GPUEngine fp32,
    fp16 AMP, bf16 and DDP (world size 1); on ``cpu`` the CPU engines the same code runs (tests)."""
    import socket

    import yaml

    def overlay(name: str, **sets) -> dict:
        params = yaml.safe_load((ENGINES_DIR / f"{name}.yml").read_text())["engine"]
        return {**params, **sets}

    with socket.socket() as sock:  # a free port for the DDP process group
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ddp = {"num_node_workers": 1, "world_size": 1, "port": port, "address": "127.0.0.1"}
    if device == "cuda":
        return OrderedDict([("fp32", overlay("gpu")), ("fp16 AMP", overlay("gpu_amp")), ("bf16", overlay("gpu", bf16=True)),
                            ("DDP x1", overlay("ddp", **ddp))])
    return OrderedDict([("fp32", overlay("cpu")), ("bf16", overlay("cpu", bf16=True)),
                        ("DDP x1", overlay("ddp", **ddp, cpu=True, process_group_kwargs={"backend": "gloo"}))])


def throughput_callback(device: str):
    """A Catalyst callback: images and seconds of each train loader pass (``.epochs``), the device synchronised at
    both ends so queued GPU work is counted."""
    from catalyst import dl

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    class Throughput(dl.Callback):
        def __init__(self):
            super().__init__(order=dl.CallbackOrder.External)
            self.epochs: List[Tuple[int, float]] = []

        def on_loader_start(self, runner) -> None:
            if runner.is_train_loader:
                sync()
                self._images, self._started = 0, time.perf_counter()

        def on_batch_end(self, runner) -> None:
            if runner.is_train_loader:
                self._images += runner.batch_size

        def on_loader_end(self, runner) -> None:
            if runner.is_train_loader:
                sync()
                self.epochs.append((self._images, time.perf_counter() - self._started))

    return Throughput()


def measure_engine(engine_params: dict, make_model, loaders, epochs: int, device: str) -> dict:
    """Train ``make_model()`` for ``epochs`` through Catalyst under the engine ``engine_params`` builds (a DDP engine
    as rank 0 of a world of one, in this process): train images/s after the first epoch (warm-up: cuDNN's choices,
    worker start; the only one if ``epochs`` is 1), peak GPU memory (None on CPU) and the last validation Dice."""
    from catalyst import dl

    from carseg.data.loader import release_workers
    from carseg.registry import registry
    from carseg.training.callbacks import ChannelsLastCallback

    engine = registry().get_from_params(**engine_params)
    distributed = isinstance(engine, dl.DistributedDataParallelEngine)

    class Runner(dl.SupervisedRunner):
        def _run(self) -> None:
            if not distributed:
                return super()._run()
            self.engine = self.get_engine()
            self._run_local(0, 1)  # what engine.spawn runs in each process, here in this one

    torch.manual_seed(0)
    model = make_model()
    throughput = throughput_callback(device)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    runner = Runner(input_key="features", output_key="logits", target_key="targets", loss_key="loss")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runner.train(model=model, criterion=BCEDiceLoss(), optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
                         loaders=loaders, engine=engine, num_epochs=epochs, verbose=False, timeit=False,
                         valid_loader="valid", valid_metric="loss", minimize_valid_metric=True, callbacks=[
                             dl.BatchTransformCallback(transform=torch.sigmoid, scope="on_batch_end", input_key="logits",
                                                       output_key="probs"),
                             dl.DiceCallback(input_key="probs", target_key="targets", threshold=0.5),
                             ChannelsLastCallback(), throughput])
    finally:
        release_workers(runner)  # the engine's prepared loaders' persistent workers, as catalyst-dl run does
    timed = throughput.epochs[1:] or throughput.epochs
    return {"images_per_s": sum(n for n, _ in timed) / sum(s for _, s in timed),
            "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
            "dice": float(runner.epoch_metrics["valid"]["dice"]), "epochs": len(throughput.epochs)}


def cached_loaders(data_dir: Path, config: Path, image_hw: Tuple[int, int], batch_size: int, workers: int,
                   images_per_epoch: int) -> "OrderedDict[str, DataLoader]":
    """``config``'s Experiment (augmentations, soft masks) at ``image_hw`` reading the cache
    (``prepare_dataset.py --cache``, built here if missing), its train rows repeated to ``images_per_epoch``."""
    from cache_benchmark import experiment_for  # noqa: E402 - benchmarks/ is the script's folder
    from carseg.commands.prepare_dataset import main as prepare

    sets = [f"experiment.image_size=[{image_hw[0]},{image_hw[1]}]", f"experiment.batch_size={batch_size}",
            f"experiment.num_workers={workers}"]
    experiment = experiment_for(config, data_dir, True, sets)
    with contextlib.redirect_stdout(io.StringIO()):
        code = prepare(["--datapath", str(data_dir), "--cache", *map(str, image_hw),
                        *(["--soft-masks"] if experiment.soft_masks else [])])
    if code != 0:
        raise SystemExit(f"(e) bin/prepare_dataset.py --datapath {data_dir} --cache failed")
    split = experiment.get_split()
    split["train"] = pd.concat([split["train"]] * -(-images_per_epoch // len(split["train"])), ignore_index=True)
    experiment.get_split = lambda: split
    return experiment.get_loaders()


def bench_engines(data_dir: Path, args, device: str) -> dict:
    """(e): configs/general.yml's model under each engine variant at ``--gpu-size``, and configs/real.yml's recipe
    (its model and bf16 engine) at 256x384."""
    configs = Path(__file__).resolve().parents[1] / "configs"
    general, real = (load_configs([configs / name]) for name in ("general.yml", "real.yml"))
    workers = args.gpu_workers if args.gpu_workers is not None else max(1, min(14, (os.cpu_count() or 2) - 2))
    loaders = cached_loaders(data_dir, configs / "real.yml", args.gpu_size, args.gpu_batch, workers, args.gpu_images)
    results = OrderedDict()
    for name, params in engine_variants(device).items():
        results[name] = measure_engine(params, lambda: build_model(general, configs / "general.yml"), loaders,
                                       args.gpu_epochs, device)
        print(f"    (e) {name}: {results[name]}", flush=True)
    recipe_loaders = cached_loaders(data_dir, configs / "real.yml", (256, 384), args.gpu_batch, workers, args.gpu_images)
    engine = engine_variants(device)["bf16" if real["engine"].get("bf16") else "fp32"]
    recipe = measure_engine(engine, lambda: build_model(real, configs / "real.yml"), recipe_loaders, args.gpu_epochs, device)
    print(f"    (e) real recipe at 256x384: {recipe}", flush=True)
    return {"variants": results, "recipe": recipe, "workers": workers}


def engines_device(choice: str) -> Optional[str]:
    """The device (e) runs on, or None after one line saying why it is skipped."""
    if choice == "skip":
        return None
    if choice == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    why = ("this torch is built without CUDA" if torch.version.cuda is None
           else f"no CUDA device visible (torch {torch.__version__}, CUDA {torch.version.cuda})")
    print(f"(e) GPU engines: skipped, {why}; the GPU figures are not measured (--engines cpu runs the section on CPU)",
          flush=True)
    return None


def print_engines(engines: dict, args, device: str) -> None:
    h, w = args.gpu_size
    print(f"(e) engines, configs/general.yml's model, {h}x{w}, batch {args.gpu_batch}, {args.gpu_epochs} epochs of "
          f"{args.gpu_images} cached images ({engines['workers']} workers; images/s after the first epoch), {device}:")
    for name, r in engines["variants"].items():
        peak = f"{r['peak_gb']:.2f} GB" if r["peak_gb"] is not None else "n/a (CPU)"
        print(f"    {name:<10}{r['images_per_s']:>9.1f} images/s   peak memory {peak:<12} valid Dice {r['dice']:.4f}")
    variants = engines["variants"]
    if "fp16 AMP" in variants:
        ratio = variants["fp16 AMP"]["images_per_s"] / variants["fp32"]["images_per_s"]
        dice = abs(variants["fp16 AMP"]["dice"] - variants["fp32"]["dice"])
        size_note = "" if (h, w) == (512, 768) else f" (goal set at 512x768; measured at {h}x{w})"
        print(f"{'    AMP / fp32 images/s':<44}{ratio:>11.2f}x  {'>= %.1fx' % AMP_GOAL:>8}  "
              f"{'PASS' if ratio >= AMP_GOAL else 'FAIL'}{size_note}")
        print(f"{'    |Dice AMP - fp32|':<44}{dice:>12.4f}  {'<= %.3f' % AMP_DICE_GOAL:>8}  "
              f"{'PASS' if dice <= AMP_DICE_GOAL else 'FAIL'}")
    rate = engines["recipe"]["images_per_s"]
    print(f"{'    real recipe (real.yml) at 256x384':<44}{rate:>7.0f} img/s  {'>= %d' % RECIPE_GOAL:>8}  "
          f"{('PASS' if rate >= RECIPE_GOAL else 'FAIL') if device == 'cuda' else '(goal for a GPU)'}")


# ----------------------------------------------------------------------------- main
def parse_hw(text: str) -> Tuple[int, int]:
    parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="Carvana layout (train/*.jpg, train_masks/*_mask.gif); "
                        "default: generate --num-images synthetic 1918x1280 photos in a temp dir")
    parser.add_argument("--num-images", type=int, default=40, help="images used (and generated) [40]")
    parser.add_argument("--image-size", type=parse_hw, default=(256, 384), help="(a) H,W [256,384]")
    parser.add_argument("--mode", choices=("valid", "train"), default="valid",
                        help="(a) which Experiment transforms (no augmentations configured either way) [valid]")
    parser.add_argument("--rounds", type=int, default=3,
                        help="(a) rounds; each runs both paths, each in a fresh forked process [3]")
    parser.add_argument("--passes", type=int, default=2, help="(a) timed passes per process, best kept [2]")
    parser.add_argument("--loop-size", type=parse_hw, default=(96, 144), help="(b) H,W of the batches [96,144]")
    parser.add_argument("--batch-size", type=int, default=8, help="(b) [8]")
    parser.add_argument("--train-batches", type=int, default=16, help="(b) [16]")
    parser.add_argument("--valid-batches", type=int, default=4, help="(b) [4]")
    parser.add_argument("--base-channels", type=int, default=16, help="(b) UNet width (depth 4) [16]")
    parser.add_argument("--loop-repeats", type=int, default=3, help="(b), (c) timed pairs [3]")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for (b); 1 is stable on a shared 2-core box, use 2 on an idle one [1]")
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument("--precision-batches", type=int, default=8, help="(d) train batches at --image-size [8]")
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument("--engines", choices=("auto", "cpu", "skip"), default="auto",
                        help="(e) GPU engines: auto runs them when CUDA is present (else one line says why not); cpu runs "
                             "the same section with the CPU engines, to check it [auto]")
    parser.add_argument("--gpu-size", type=parse_hw, default=(512, 768), help="(e) H,W of the engine matrix [512,768]")
    parser.add_argument("--gpu-batch", type=int, default=32, help="(e) [32]")
    parser.add_argument("--gpu-epochs", type=int, default=3, help="(e) epochs per engine; the first is warm-up [3]")
    parser.add_argument("--gpu-images", type=int, default=1024, help="(e) train images per epoch (rows repeated) [1024]")
    parser.add_argument("--gpu-workers", type=int, help="(e) loader workers [cores - 2, at most 14]")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    cv2.setNumThreads(1)  # per-sample cost on one core, as in a loader worker (Experiment's worker_init)
    with tempfile.TemporaryDirectory(prefix="carseg-bench-") as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            from carseg.data.synthetic import generate_dataset

            data_dir = Path(tmp) / "data"
            views = 8
            cars = -(-args.num_images // views)
            print(f"generating {cars * views} synthetic 1918x1280 images in {data_dir} ...", flush=True)
            with contextlib.redirect_stderr(io.StringIO()):
                generate_dataset(data_dir, num_cars=cars, views=views, num_test_cars=0, size=(1918, 1280), seed=0)
        try:
            pairs = pair_by_name(data_dir / "train", data_dir / "train_masks").pairs[: args.num_images]
        except CarsegError as exc:
            print(exc, file=sys.stderr)
            return 2
        if not pairs:
            print(f"{data_dir}: no train/*.jpg with train_masks/*_mask.gif pairs", file=sys.stderr)
            return 2
        with Image.open(pairs[0][0]) as img:
            photo_size = "x".join(map(str, img.size))
        print(f"data: {len(pairs)} pairs from {data_dir} ({photo_size} photos); torch {torch.__version__}, "
              f"cv2 {cv2.__version__}, threads: cv2 1, torch 1 for (a) and {args.threads} for (b)", flush=True)

        data = loop = None
        if not args.skip_data:
            t = time.perf_counter()
            data = bench_data(pairs, args.image_size, args.mode, args.rounds, args.passes)
            print(f"(a) done in {time.perf_counter() - t:.0f}s; {data['check']}", flush=True)
        if not args.skip_loop:
            t = time.perf_counter()
            loop = bench_loop(our_dataset(pairs, args.loop_size, "valid"), args)
            print(f"(b), (c) done in {time.perf_counter() - t:.0f}s; {loop['check']}", flush=True)
        precision = None
        if not args.skip_precision:
            t = time.perf_counter()
            precision = bench_precision(our_dataset(pairs, args.image_size, "valid"), args)
            print(f"(d) done in {time.perf_counter() - t:.0f}s; after one epoch from the same weights: "
                  f"{precision['check']}", flush=True)
        engines, device = None, engines_device(args.engines)
        if device is not None:
            t = time.perf_counter()
            engines = bench_engines(data_dir, args, device)
            print(f"(e) done in {time.perf_counter() - t:.0f}s", flush=True)

    h, w = args.image_size
    print()
    print(f"{'measure':<44}{'value':>12}  {'goal':>8}  status")
    if data:
        ms = data["ms"]
        ok = "PASS" if data["ratio"] >= DATA_GOAL else "FAIL"
        lo, hi = data["ratio_range"]
        print(f"{f'(a) data {h}x{w}: ours vs tutorial, speed-up':<44}{data['ratio']:>11.2f}x  {'>= %.1fx' % DATA_GOAL:>8}  {ok}"
              f"  (per round {lo:.2f}-{hi:.2f}x)")
        for name, parts in data["breakdown"].items():
            steps = " / ".join(f"{v:.1f}" for v in parts.values())
            print(f"{'    ' + name + ' CPU ms/sample (samples/s)':<44}{ms[name]:>9.1f} ms  ({1e3 / ms[name]:.0f}/s; "
                  f"wall {data['wall_ms'][name]:.1f} ms; {' / '.join(STEPS)}: {steps} ms)")
    if loop:
        ok = "PASS" if loop["ratio"] <= LOOP_GOAL else "FAIL"
        lo, hi = loop["ratio_range"]
        lh, lw = args.loop_size
        print(f"{f'(b) epoch: catalyst / plain loop':<44}{loop['ratio']:>11.3f}x  {'<= %.2fx' % LOOP_GOAL:>8}  {ok}"
              f"  (per pair {lo:.3f}-{hi:.3f}x)")
        print(f"    plain {loop['s']['plain']:.2f} s, catalyst {loop['s']['catalyst']:.2f} s per epoch ({loop['timer']}, "
              f"{args.threads} torch thread{'s' if args.threads > 1 else ''}): {loop['batches']} batches of {args.batch_size} "
              f"at {lh}x{lw}, UNet(base {args.base_channels}, depth 4), AdamW, BCEDiceLoss, Dice+IoU")
        print(f"{'    catalyst fixed cost (1x1-conv model)':<44}{loop['overhead_ms']:>9.0f} ms  per epoch "
              f"({loop['overhead_ms'] / loop['batches']:.1f} ms/batch; plain epoch {loop['tiny_plain_ms']:.0f} ms)")
        ok = "PASS" if loop["added_share"] <= ADDITIONS_GOAL else "FAIL"
        lo, hi = loop["added_range"]
        logged, previews = loop["added_s"]["logged"], loop["added_s"]["previews"]
        print(f"{'(c) epoch: with / without preview callback':<44}{loop['added_share']:>11.3f}x  {'<= %.2fx' % ADDITIONS_GOAL:>8}  {ok}"
              f"  (1 + its cost / the epoch)")
        print(f"    its cost, 1x1-conv model, into a logdir     {loop['added_ms']:>9.0f} ms  per epoch (median of pairs)")
        print(f"    UNet epoch into a logdir (CSV + TensorBoard + checkpoints): {logged:.2f} s without, {previews:.2f} s with "
              f"({loop['added_ratio']:.3f}x, per pair {lo:.3f}-{hi:.3f}x: run-to-run noise is larger; {loop['timer']})")
        print(f"{'    curves.png at the end of a run (once)':<44}{1e3 * loop['curves_s']:>9.0f} ms  wall")
    if precision:
        ok = "PASS" if precision["ratio"] >= PRECISION_GOAL else "FAIL"
        lo, hi = precision["ratio_range"]
        print(f"{'(d) epoch: bf16 speed-up over fp32':<44}{precision['ratio']:>11.2f}x  {'>= %.1fx' % PRECISION_GOAL:>8}  {ok}"
              f"  (per pair {lo:.2f}-{hi:.2f}x)")
        print(f"    fp32 {precision['s'][False]:.2f} s, bf16 {precision['s'][True]:.2f} s per epoch (wall, 2 torch threads): "
              f"{precision['batches']} batches of {args.batch_size} at {h}x{w}, configs/real.yml's model, channels-last")
    if engines:
        print_engines(engines, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
