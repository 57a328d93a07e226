"""``bin/evaluate.py``: score a traced model on labelled photos (Dice, IoU, ... at full resolution)."""
import argparse
import csv
import heapq
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carseg.atomic import write_bytes_atomic
from carseg.data.dataset import read_pairs_csv
from carseg.data.images import read_image, read_mask, write_image_atomic
from carseg.data.pairs import check_same_size, pair_by_name
from carseg.errors import CarsegError, failure
from carseg.metrics import METRICS, scores
from carseg.predictor import BUILTIN_MODEL, REFINE, TTA_TRANSFORMS, Predictor

PROG = "evaluate.py"
# Overlay colours (RGB): what the model got right, what it added, what it missed.
TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = (0, 200, 0), (230, 0, 0), (0, 90, 255)


class PairDataset(Dataset):
    """Decodes photo and mask and preprocesses in loader workers; a bad pair becomes an error record.

    The item carries a grey copy of the photo (for the edge refinement) and the {0, 1} mask, not the RGB
    photo (only the few overlay images are read again at the end), to keep worker -> main traffic small.
    """

    def __init__(self, pairs: List[Tuple[Path, Path]], predictor: Predictor):
        self.pairs, self.predictor = pairs, predictor

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict:
        image_path, mask_path = self.pairs[index]
        try:
            image = read_image(image_path)
            mask = read_mask(mask_path)
            check_same_size(image_path, image.shape, mask_path, mask.shape)
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # guides the edge refinement; a third of the photo's bytes
            return {"index": index, "gray": gray, "mask": mask, "prepared": self.predictor.prepare(image)}
        except Exception as exc:  # whatever a decoder raises for one odd pair, the evaluation goes on
            return {"index": index, "error": failure(image_path, exc)}


@dataclass
class Evaluation:
    """Per-image scores (in input order), failures, and the worst images kept for overlays."""

    rows: List[Dict] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)
    worst: List[Tuple] = field(default_factory=list)  # heap of (-dice, -index, image, pred, truth)

    def means(self) -> Dict[str, float]:
        """Mean of each metric over the images (ROC AUC over the images where it is defined)."""
        means = {}
        for name in METRICS:
            values = [row[name] for row in self.rows if not math.isnan(row[name])]
            means[name] = float(np.mean(values)) if values else float("nan")
        return means


def evaluate(pairs: List[Tuple[Path, Path]], predictor: Predictor, batch_size: int = 8, workers: int = 2,
             num_overlays: int = 0, progress: bool = True, log=print) -> Evaluation:
    """Predict every pair in batches and score it against its mask at the photo's full resolution."""
    result = Evaluation()
    by_index: Dict[int, Dict] = {}
    loader = DataLoader(PairDataset(pairs, predictor), batch_size=batch_size, num_workers=workers,
                        collate_fn=list, pin_memory=False)
    with tqdm(total=len(pairs), unit="img", disable=not progress) as bar:
        for batch in loader:
            good = [item for item in batch if "error" not in item]
            for item in batch:
                if "error" in item:
                    result.failed.append(str(pairs[item["index"]][0]))
                    log(f"failed: {item['error']}")
            if good:
                probs = predictor.probabilities([i["prepared"] for i in good], [i["gray"] for i in good])
                for item, prob in zip(good, probs):
                    image = pairs[item["index"]][0]
                    pred = predictor.binarize(prob) > 0
                    by_index[item["index"]] = row = {"image": image.name, **scores(pred, item["mask"], prob)}
                    if num_overlays > 0:  # keep only the worst few masks in memory
                        heapq.heappush(result.worst, (-row["dice"], -item["index"], image, pred, item["mask"]))
                        if len(result.worst) > num_overlays:
                            heapq.heappop(result.worst)
            bar.update(len(batch))
    result.rows = [by_index[i] for i in sorted(by_index)]
    return result


def overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The photo in grey with true positives tinted green, false positives red and false negatives blue.

    Grey first, so the photo's own greens and reds cannot be mistaken for the tints.
    """
    out = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2).astype(np.float32)
    pred, truth = pred.astype(bool), truth.astype(bool)
    for where, colour in ((pred & truth, TRUE_POSITIVE), (pred & ~truth, FALSE_POSITIVE), (~pred & truth, FALSE_NEGATIVE)):
        out[where] = (1 - alpha) * out[where] + alpha * np.float32(colour)
    out[~(pred | truth)] *= 0.6  # dim the true background so the tints stand out
    return out.round().astype(np.uint8)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """A black strip with ``text`` and the colour legend above the image."""
    scale = max(0.4, image.shape[1] / 1400)
    height = int(28 * scale) + 8
    strip = np.zeros((height, image.shape[1], 3), np.uint8)
    x, thickness = 6, max(1, round(scale * 1.5))
    for label, colour in ((text, (255, 255, 255)), ("TP", TRUE_POSITIVE), ("FP", FALSE_POSITIVE), ("FN", FALSE_NEGATIVE)):
        cv2.putText(strip, label, (x, height - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
        x += cv2.getTextSize(label + "  ", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    return np.vstack([strip, image])


def write_overlays(result: Evaluation, folder: Path, log=print) -> List[Path]:
    """``folder/<rank>_<stem>.png`` for the kept worst images, rank 1 = lowest Dice."""
    written = []
    worst = sorted(result.worst, reverse=True)  # -dice descending = dice ascending; ties by input order
    width = len(str(len(worst)))
    for rank, (neg_dice, _, image_path, pred, truth) in enumerate(worst, start=1):
        path = folder / f"{rank:0{width}d}_{image_path.stem}.png"
        try:
            picture = overlay(read_image(image_path), pred, truth)
            write_image_atomic(path, _caption(picture, f"#{rank} {image_path.name} dice={-neg_dice:.4f}"), "png")
        except (CarsegError, OSError) as exc:
            log(f"failed: overlay {path}: {exc}")
            continue
        written.append(path)
    return written


def _clean(value):
    """NaN -> None, so the JSON stays valid (``NaN`` is not JSON)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_text_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise CarsegError(f"{path}: cannot write ({exc.strerror or exc}); choose another path") from exc


def write_csv(result: Evaluation, path: Path) -> None:
    """One row per evaluated image; an undefined ROC AUC is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", *METRICS])
    for row in result.rows:
        writer.writerow([row["image"], *("" if math.isnan(row[m]) else f"{row[m]:.6f}" for m in METRICS)])
    _write_text_atomic(path, buffer.getvalue())


def write_json(result: Evaluation, path: Path, info: Dict) -> None:
    """Run info, means, per-image scores and the failed images."""
    report = {**info, "n": len(result.rows), "failed": result.failed,
              "mean": {k: _clean(v) for k, v in result.means().items()},
              "per_image": [{k: _clean(v) for k, v in row.items()} for row in result.rows]}
    _write_text_atomic(path, json.dumps(report, indent=2) + "\n")


def summary_lines(result: Evaluation) -> List[str]:
    """A small table of means, then the machine-readable last line."""
    means = result.means()
    lines = [f"{'metric':<10} {'mean':>8}"]
    lines += [f"{name:<10} {means[name]:>8.4f}" for name in METRICS]
    lines.append(f"dice={means['dice']:.4f} iou={means['iou']:.4f} n={len(result.rows)}")
    return lines


def _pairs(images: Path, masks: Path, mask_suffix: str, log) -> List[Tuple[Path, Path]]:
    pairing = pair_by_name(images, masks, mask_suffix)
    for files, where in ((pairing.images_without_mask, f"without a mask NAME{mask_suffix}.* in {masks}"),
                         (pairing.masks_without_image, f"without an image in {images}")):
        if files:
            examples = ", ".join(p.name for p in files[:3]) + (", ..." if len(files) > 3 else "")
            log(f"{PROG}: warning: skipping {len(files)} file(s) {where}: {examples}")
    if not pairing.pairs:
        raise CarsegError(f"{images}: no image has a mask named NAME{mask_suffix}.gif/.png in {masks}; check --mask-suffix")
    return pairing.pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Score a traced model on labelled photos: Dice, IoU, accuracy, precision, recall, "
                               "F1 and ROC AUC per image at full resolution, and their means.")
    parser.add_argument("model", type=Path, nargs="?", metavar="MODEL",
                        help="traced model from catalyst-dl trace (default: the built-in model, trained on real car photos)")
    parser.add_argument("--images", type=Path, metavar="DIR", help="folder of photos")
    parser.add_argument("--masks", type=Path, metavar="DIR", help="folder of masks NAME<suffix>.gif/.png")
    parser.add_argument("--pairs", type=Path, metavar="CSV",
                        help="instead of --images/--masks: an image,mask CSV, e.g. bin/prepare_dataset.py's dataset_valid.csv")
    parser.add_argument("--mask-suffix", default="_mask", metavar="SUFFIX", help="mask name = image stem + this (default: _mask)")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write per-image scores as CSV")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write means and per-image scores as JSON")
    parser.add_argument("--overlays", type=Path, metavar="DIR",
                        help="write PNGs of the worst images by Dice (TP green, FP red, FN blue)")
    parser.add_argument("--num-overlays", type=int, default=8, metavar="N", help="how many worst images to draw (default: 8)")
    parser.add_argument("--backend", choices=("auto", "torchscript", "onnx"), default="auto",
                        help="model runtime; auto: onnx for a .onnx file, else TorchScript")
    parser.add_argument("--tta", choices=tuple(TTA_TRANSFORMS), default="none", help="test-time augmentation")
    parser.add_argument("--refine", choices=REFINE, default="guided",
                        help="full-resolution edges: guided (follow the photo's edges; default) or none (bilinear)")
    parser.add_argument("--threshold", type=float, metavar="T", help="probability threshold (default: the model's, 0.5)")
    parser.add_argument("--image-size", type=int, metavar="S", help="network input longest side (default: the training size)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per forward pass (default: 8 on GPU; on CPU 8 at 128x192 down to 1 at 512x768)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N", help="decoding processes")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run the model")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if (args.pairs is None) == (args.images is None or args.masks is None) or (args.pairs and (args.images or args.masks)):
        raise CarsegError("give either --images DIR --masks DIR, or --pairs CSV")
    for name in ("batch_size", "image_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CarsegError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    for name in ("num_overlays", "workers"):
        if getattr(args, name) < 0:
            raise CarsegError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be 0 or more")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise CarsegError(f"--threshold {args.threshold}: must be in [0, 1]")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    log = lambda line: print(line, file=sys.stderr)
    try:
        _check_args(args)
        pairs = (_pairs(args.images, args.masks, args.mask_suffix, log) if args.pairs is None
                 else [(Path(i), Path(m)) for i, m in read_pairs_csv(args.pairs)[["image", "mask"]].itertuples(index=False)])
        predictor = Predictor(args.model, device=args.device, tta=args.tta, threshold=args.threshold, backend=args.backend,
                              image_size=args.image_size, refine=args.refine)
        result = evaluate(pairs, predictor, args.batch_size or predictor.default_batch_size, args.workers,
                          args.num_overlays if args.overlays else 0, progress=not args.quiet, log=log)
        info = {"model": str(args.model or BUILTIN_MODEL), "images": str(args.images or args.pairs),
                "masks": str(args.masks or args.pairs), "tta": args.tta, "refine": args.refine,
                "threshold": predictor.threshold, "image_size": predictor.max_size}
        if args.csv:
            write_csv(result, args.csv)
        if args.json:
            write_json(result, args.json, info)
        if args.overlays:
            write_overlays(result, args.overlays, log)
    except CarsegError as exc:
        log(f"{PROG}: error: {exc}")
        return 1
    if result.failed:
        log(f"{PROG}: {len(result.failed)} of {len(pairs)} pairs failed (see above); scores cover the other {len(result.rows)}")
    print("\n".join(summary_lines(result)))
    return 1 if result.failed else 0
