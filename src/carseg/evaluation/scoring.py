"""Score a Predictor on labelled photos at each photo's full resolution, streaming like background removal."""
import heapq
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy.stats import spearmanr

from carseg.data.images import read_image, read_mask
from carseg.data.pairs import check_same_size
from carseg.evaluation.metrics import METRICS, scores
from carseg.inference.matting import soft_alpha
from carseg.inference.options import CutoutOptions
from carseg.inference.predictor import Predictor, Prepared
from carseg.inference.step import cut_out
from carseg.inference.streaming import stream

Pair = Tuple[Path, Path]  # (photo, mask)
# Car size: the true mask's share of the photo (upper bounds; the last is open).
SIZES = (("small (<5%)", 0.05), ("medium (5-25%)", 0.25), ("large (>25%)", float("inf")))


def size_class(car_fraction: float) -> str:
    return next(name for name, bound in SIZES if car_fraction < bound)


@dataclass
class Evaluation:
    """Per-image scores (in input order), failures, and the worst images kept for overlays."""

    rows: List[Dict] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)
    worst: List[Tuple] = field(default_factory=list)  # heap of (-dice, -index, image, pred, truth)

    def means(self, rows: Optional[List[Dict]] = None) -> Dict[str, float]:
        """Mean of each metric over the images (or ``rows``; ROC AUC over the images where it is defined)."""
        means = {}
        for name in METRICS:
            values = [row[name] for row in (self.rows if rows is None else rows) if not math.isnan(row[name])]
            means[name] = float(np.mean(values)) if values else float("nan")
        return means

    def groups(self, key: str) -> Dict[str, List[Dict]]:
        """The rows by ``kind`` or ``size`` (sorted by name; rows without the key are left out)."""
        groups: Dict[str, List[Dict]] = {}
        for row in self.rows:
            if row.get(key):
                groups.setdefault(row[key], []).append(row)
        return dict(sorted(groups.items()))

    def confidence_spearman(self) -> float:
        """Spearman's rank correlation of the per-photo confidence with the photo's Dice (NaN under 3 photos)."""
        if len(self.rows) < 3:
            return float("nan")
        return float(spearmanr([row["confidence"] for row in self.rows], [row["dice"] for row in self.rows]).statistic)


def evaluate(pairs: List[Pair], predictor: Predictor, batch_size: int = 8, workers: int = 2,
             num_overlays: int = 0, progress: bool = True, log=print, alpha: str = "hard", subject: str = "main",
             kinds: Optional[Sequence[str]] = None) -> Evaluation:
    """Predict every pair in batches and score it against its mask at the photo's full resolution: the mask of the
    main car or of every car (``subject``) as ``bin/car_segmentation.py`` cuts it out, binary (``alpha="hard"``) or
    the soft matte (``--alpha soft``). Each row also has the photo's ``kind`` (from ``kinds``), ``size`` class,
    ``car_fraction`` (of the true mask) and the cut-out's ``confidence``."""
    options = CutoutOptions(subject=subject)
    result = Evaluation()
    by_index: Dict[int, Dict] = {}
    lock = threading.Lock()  # the worst-images heap is shared by the scoring threads

    def read(job: Tuple[int, Pair]) -> Tuple[Prepared, Tuple[np.ndarray, np.ndarray]]:
        # A grey copy of the photo (guides the edge refinement, a third of its bytes) and the {0, 1} mask travel
        # back from the loader workers, not the RGB photo: only the few overlay images are read again at the end.
        pair = job[1]
        image, mask = read_image(pair[0]), read_mask(pair[1])
        check_same_size(pair[0], image.shape, pair[1], mask.shape)
        return predictor.prepare(image), (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), mask)

    def finish(job: Tuple[int, Pair], extras: Tuple[np.ndarray, np.ndarray], prob: np.ndarray) -> Dict:
        (index, pair), (gray, truth) = job, extras
        cut = cut_out(predictor, gray, prob, options, pictures=False)
        pred = cut.hard > 0
        scored = soft_alpha(cut.prob, cut.hard, predictor.threshold) if alpha == "soft" else pred
        car_fraction = float(np.count_nonzero(truth)) / truth.size
        row = {"image": pair[0].name, "kind": kinds[index] if kinds is not None else "", "size": size_class(car_fraction),
               "car_fraction": car_fraction, "confidence": cut.confidence, **scores(scored, truth, cut.prob)}
        if num_overlays > 0:  # keep only the worst few masks in memory
            with lock:
                heapq.heappush(result.worst, (-row["dice"], -index, pair[0], pred, truth))
                if len(result.worst) > num_overlays:
                    heapq.heappop(result.worst)
        return row

    jobs = list(enumerate(pairs))
    for (index, pair), row, error in stream(jobs, predictor, read, finish, batch_size, workers, progress,
                                            source=lambda job: job[1][0]):
        if error:
            result.failed.append(str(pair[0]))
            log(f"failed: {error}")
        else:
            by_index[index] = row
    result.rows = [by_index[i] for i in sorted(by_index)]
    return result
