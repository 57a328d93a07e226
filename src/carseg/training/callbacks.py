"""Callbacks the configs use beyond Catalyst's own."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from catalyst import dl

from carseg.data.images import write_image_atomic
from carseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from carseg.errors import CarsegError
from carseg.evaluation.overlay import LEGEND, overlay, put_legend


class ChannelsLastCallback(dl.Callback):
    """Keep the model's weights channels-last (NHWC): oneDNN's CPU convolutions then run NHWC, ~27% less
    time per training step for the ResNet-18 U-Net at 256x384 on 2 cores; also what GPUs' tensor cores prefer."""

    def __init__(self):
        super().__init__(order=dl.CallbackOrder.Internal)

    def on_experiment_start(self, runner: "dl.IRunner") -> None:
        runner.model.to(memory_format=torch.channels_last)  # in place: the optimizer keeps the same parameters


class KindDiceCallback(dl.Callback):
    """Dice per kind of photo (the batch's ``kind_key`` strings: studio, street, video), logged as ``dice_<kind>``
    beside the loader's other metrics (CSV, TensorBoard, console): the mean of each photo's Dice at ``threshold``,
    a photo with no car and no prediction counting 1. Loaders whose batches carry no kinds are left alone."""

    def __init__(self, input_key: str = "probs", target_key: str = "targets", kind_key: str = "kind", threshold: float = 0.5):
        super().__init__(order=dl.CallbackOrder.Metric)
        self.input_key, self.target_key, self.kind_key, self.threshold = input_key, target_key, kind_key, threshold
        self._scores: Dict[str, List[float]] = {}

    def on_loader_start(self, runner: "dl.IRunner") -> None:
        self._scores = {}

    def on_batch_end(self, runner: "dl.IRunner") -> None:
        kinds = runner.batch.get(self.kind_key)
        if kinds is None:
            return
        predicted = (runner.batch[self.input_key].detach().float() > self.threshold).flatten(1).float()
        target = (runner.batch[self.target_key].detach().float() > 0.5).flatten(1).float()
        intersection = (predicted * target).sum(1)
        total = predicted.sum(1) + target.sum(1)
        dice = torch.where(total > 0, 2 * intersection / total.clamp(min=1), torch.ones_like(total))
        for kind, score in zip(kinds, dice.cpu().tolist()):
            self._scores.setdefault(kind, []).append(score)

    def on_loader_end(self, runner: "dl.IRunner") -> None:
        for kind, scores in sorted(self._scores.items()):
            runner.loader_metrics[f"dice_{kind}"] = float(np.mean(scores))


class PredictionPreviewCallback(dl.Callback):
    """At the end of each ``loader_key`` loader, a grid of its first ``num_images`` samples.

    One row per sample: the photo | the predicted probability (grey, 0..1) | the true mask |
    the thresholded prediction over the photo (true positives green, false positives red, false
    negatives blue), with the sample's Dice in its corner. Written to
    ``LOGDIR/previews/epoch_<NNN>.png`` (atomically) and logged to TensorBoard under the tag
    ``previews`` of that loader (``LOGDIR/tensorboard/<loader_key>``).

    Only the first batch(es) of the loader are touched (a slice copied to the CPU); the other
    batches cost one comparison. ``output_key`` must hold probabilities (after the sigmoid);
    with several output channels the first is shown. ``mean``/``std`` must be the Experiment's
    normalization (ImageNet's by default) for the photos to show in their colours. Tiles are shrunk
    so that their longest side is at most ``max_tile_size`` pixels. The valid loader is not
    shuffled, so the same photos show every epoch. Under DDP only the main process draws.
    """

    def __init__(
        self,
        loader_key: str = "valid",
        num_images: int = 4,
        input_key: str = "features",
        output_key: str = "probs",
        target_key: str = "targets",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        logdir: Optional[str] = None,
        threshold: float = 0.5,
        max_tile_size: int = 384,
    ):
        super().__init__(order=dl.CallbackOrder.External)
        if int(num_images) < 1:
            raise CarsegError(f"PredictionPreviewCallback: num_images must be at least 1, got {num_images}")
        self.loader_key = loader_key
        self.num_images = int(num_images)
        self.input_key, self.output_key, self.target_key = input_key, output_key, target_key
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.logdir = logdir
        self.threshold = float(threshold)
        self.max_tile_size = int(max_tile_size)
        self._active = False
        self._kept: Dict[str, List[torch.Tensor]] = {}
        self._count = 0

    def on_loader_start(self, runner: "dl.IRunner") -> None:
        self._active = runner.loader_key == self.loader_key and getattr(runner.engine, "is_main_process", True)
        self._kept = {self.input_key: [], self.output_key: [], self.target_key: []}
        self._count = 0

    def on_batch_end(self, runner: "dl.IRunner") -> None:
        if not self._active or self._count >= self.num_images:
            return
        take = self.num_images - self._count
        for key, kept in self._kept.items():
            if key not in runner.batch:
                raise CarsegError(
                    f"PredictionPreviewCallback: the batch has no '{key}' (it has: {', '.join(map(str, runner.batch))}); "
                    "set input_key/output_key/target_key in the config")
            kept.append(runner.batch[key][:take].detach().float().cpu())
        self._count += len(self._kept[self.input_key][-1])

    def on_loader_end(self, runner: "dl.IRunner") -> None:
        if not self._active or self._count == 0:
            return
        images, probs, targets = (torch.cat(self._kept[key]).numpy()
                                  for key in (self.input_key, self.output_key, self.target_key))
        self._kept = {key: [] for key in self._kept}
        grid = preview_grid(images, probs, targets, self.mean, self.std, self.threshold, self.max_tile_size)
        runner.log_image(tag="previews", image=grid, scope="loader")
        logdir = self.logdir or getattr(runner, "_logdir", None)
        if logdir:
            write_image_atomic(Path(logdir) / "previews" / f"epoch_{runner.epoch_step:03d}.png", grid, "png")


GAP, GAP_GREY = 4, 40


def _first_channel(array: np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) -> (N, H, W)."""
    return array[:, 0] if array.ndim == 4 else array


def preview_grid(images: np.ndarray, probs: np.ndarray, targets: np.ndarray, mean: Sequence[float],
                 std: Sequence[float], threshold: float = 0.5, max_tile_size: int = 384) -> np.ndarray:
    """The RGB uint8 grid :class:`PredictionPreviewCallback` writes, from (N, 3, H, W) normalized
    images, (N, [1,] H, W) probabilities and masks: a title strip, then one row per sample.

    Tiles are shrunk first (longest side at most ``max_tile_size``); the Dice printed on each row is
    computed at the full input size.
    """
    probs, targets = _first_channel(probs), _first_channel(targets) > 0.5
    height, width = images.shape[2:]
    scale = min(1.0, max_tile_size / max(height, width))
    tile_h, tile_w = max(1, round(height * scale)), max(1, round(width * scale))

    def fit(tile: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        return tile if tile.shape[:2] == (tile_h, tile_w) else cv2.resize(tile, (tile_w, tile_h), interpolation=interpolation)

    mean = np.asarray(mean, np.float32) * 255.0
    std = np.asarray(std, np.float32) * 255.0
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(0.7, tile_w / 320))
    thickness = 1 if font_scale < 0.6 else 2
    line_h = cv2.getTextSize("Ag", font, font_scale, thickness)[0][1] + 10

    rows = []
    for image, prob, truth in zip(images, probs, targets):
        pred = prob > threshold
        total = int(pred.sum()) + int(truth.sum())
        dice = 2 * int((pred & truth).sum()) / total if total else 1.0
        photo = fit(np.clip(image.transpose(1, 2, 0) * std + mean, 0, 255).astype(np.uint8))
        prob_tile = (np.clip(fit(prob.astype(np.float32)), 0, 1) * 255).astype(np.uint8)
        truth_tile = fit(truth.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
        errors = overlay(photo, fit(pred.astype(np.uint8), cv2.INTER_NEAREST).astype(bool), truth_tile)
        cv2.putText(errors, f"dice {dice:.3f}", (4, line_h - 6), font, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
        grey = [np.repeat(tile[..., None], 3, axis=2) for tile in (prob_tile, truth_tile.astype(np.uint8) * 255)]
        rows.append(_hstack([photo, *grey, errors]))

    header = np.zeros((line_h, rows[0].shape[1], 3), np.uint8)
    for column, label in enumerate(["photo", "probability", "true mask", None]):
        x = column * (tile_w + GAP) + 4
        legend = [(label, (255, 255, 255))] if label else [(f"p>{threshold:g}:", (255, 255, 255)), *LEGEND]
        put_legend(header, x, legend, font_scale, thickness)
    return _vstack([header, *rows])


def _hstack(tiles: List[np.ndarray]) -> np.ndarray:
    spacer = np.full((tiles[0].shape[0], GAP, 3), GAP_GREY, np.uint8)
    return np.hstack([part for tile in tiles for part in (tile, spacer)][:-1])


def _vstack(rows: List[np.ndarray]) -> np.ndarray:
    spacer = np.full((GAP, rows[0].shape[1], 3), GAP_GREY, np.uint8)
    return np.vstack([part for row in rows for part in (row, spacer)][:-1])
