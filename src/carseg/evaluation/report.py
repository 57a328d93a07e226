"""What an evaluation leaves behind: per-image CSV, JSON report, a summary table, overlays of the worst images."""
import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List

from carseg.atomic import write_bytes_atomic
from carseg.data.images import read_image, write_image_atomic
from carseg.errors import CarsegError
from carseg.evaluation.metrics import METRICS
from carseg.evaluation.overlay import captioned, overlay
from carseg.evaluation.scoring import Evaluation


def write_overlays(result: Evaluation, folder: Path, log=print) -> List[Path]:
    """``folder/<rank>_<stem>.png`` for the kept worst images, rank 1 = lowest Dice."""
    written = []
    worst = sorted(result.worst, reverse=True)  # -dice descending = dice ascending; ties by input order
    width = len(str(len(worst)))
    for rank, (neg_dice, _, image_path, pred, truth) in enumerate(worst, start=1):
        path = folder / f"{rank:0{width}d}_{image_path.stem}.png"
        try:
            picture = overlay(read_image(image_path), pred, truth)
            write_image_atomic(path, captioned(picture, f"#{rank} {image_path.name} dice={-neg_dice:.4f}"), "png")
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
    writer.writerow(["image", "kind", "size", "car_fraction", "confidence", *METRICS])
    for row in result.rows:
        writer.writerow([row["image"], row["kind"], row["size"], f"{row['car_fraction']:.6f}", f"{row['confidence']:.6f}",
                         *("" if math.isnan(row[m]) else f"{row[m]:.6f}" for m in METRICS)])
    _write_text_atomic(path, buffer.getvalue())


def write_json(result: Evaluation, path: Path, info: Dict) -> None:
    """Run info, means, per-image scores and the failed images."""
    report = {**info, "n": len(result.rows), "failed": result.failed,
              "mean": {k: _clean(v) for k, v in result.means().items()},
              **{f"mean_by_{key}": {name: {"n": len(rows), **{k: _clean(v) for k, v in result.means(rows).items()}}
                                    for name, rows in result.groups(key).items()} for key in ("kind", "size")},
              "confidence_spearman": _clean(result.confidence_spearman()),
              "per_image": [{k: _clean(v) for k, v in row.items()} for row in result.rows]}
    _write_text_atomic(path, json.dumps(report, indent=2) + "\n")


def summary_lines(result: Evaluation) -> List[str]:
    """A small table of means, Dice by kind of photo and by car size, the confidence's rank correlation with Dice,
    then the machine-readable last line."""
    means = result.means()
    lines = [f"{'metric':<12} {'mean':>8}"]
    lines += [f"{name:<12} {means[name]:>8.4f}" for name in METRICS]
    for key, title in (("kind", "kind of photo"), ("size", "car size")):
        groups = result.groups(key)
        if len(groups) > 1 or key == "kind" and groups:
            lines.append(f"{title:<16} {'n':>5} {'dice':>8} {'boundary_iou':>13}")
            lines += [f"{name:<16} {len(rows):>5} {result.means(rows)['dice']:>8.4f} {result.means(rows)['boundary_iou']:>13.4f}"
                      for name, rows in groups.items()]
    lines.append(f"confidence vs dice: Spearman {result.confidence_spearman():.3f}")
    lines.append(f"dice={means['dice']:.4f} iou={means['iou']:.4f} n={len(result.rows)}")
    return lines


