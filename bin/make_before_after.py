#!/usr/bin/env python
"""Write a before/after picture: photos from IN next to their cut-outs from OUT on a checkerboard."""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def checkerboard(height: int, width: int, cell: int = 24) -> np.ndarray:
    rows, cols = np.indices((height, width)) // cell
    return np.where(((rows + cols) % 2)[..., None] == 0, 205, 245).astype(np.uint8).repeat(3, axis=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("photos", type=Path)
    parser.add_argument("cutouts", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=3, help="how many rows")
    parser.add_argument("--width", type=int, default=960, help="width of the picture")
    args = parser.parse_args()
    rows = []
    for cutout in sorted(p for p in args.cutouts.glob("*.png") if not p.stem.endswith("_mask"))[: args.count]:
        photo = next(args.photos.glob(f"{cutout.stem}.*"))
        rgba = np.asarray(Image.open(cutout).convert("RGBA")).astype(np.float32)
        alpha = rgba[..., 3:] / 255
        composed = rgba[..., :3] * alpha + checkerboard(*rgba.shape[:2]) * (1 - alpha)
        rows.append(np.hstack([np.asarray(Image.open(photo).convert("RGB")), composed.astype(np.uint8)]))
    grid = Image.fromarray(np.vstack(rows))
    grid.resize((args.width, round(grid.height * args.width / grid.width)), Image.LANCZOS).save(args.out)
    print(f"before/after -> {args.out}")


if __name__ == "__main__":
    main()
