"""Synthetic dataset in Carvana's layout: random side-view cars on cluttered studio backgrounds.

Each car gets a random body (sedan, hatch, SUV or van), paint, glass, wheels and lights;
each of its views is a turntable shot (facing left or right, squashed by the rotation angle)
on a fresh background with a shadow, distractors behind the car, blur and noise. Masks are
the exact car silhouette (body, cabin, windows, tyres) drawn from the same geometry.

    python -m carseg.commands.download_dataset --data-dir data --num-cars 60 --views 8
"""
from __future__ import annotations

import colorsys
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np
from PIL import Image

from carseg.atomic import write_bytes_atomic
from carseg.progress import progress_bar

SHIFT = 4  # cv2 fixed-point bits: sub-pixel geometry shared by image and mask
ONE = 1 << SHIFT
MIN_SQUASH = 0.64  # |cos(rotation)| floor: a car seen nearly head-on still shows its side
JPEG_QUALITY = 90
WORDS = ("SALE", "AUTO", "OPEN", "STUDIO", "PARKING", "EXIT", "SERVICE", "NEW", "CARS", "50% OFF",
         "TEST DRIVE", "WASH", "TYRES", "GARAGE", "NO 7", "2024", "SHOWROOM", "LEASE")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
# Per body style, (low, high) in car lengths: wheel radius, body height, cabin height,
# cabin base rear/front x, roof rear/front x.
STYLES = {
    "sedan": ((.068, .078), (.13, .16), (.11, .13), (.16, .24), (.66, .72), (.30, .38), (.54, .60)),
    "hatch": ((.070, .080), (.14, .17), (.12, .14), (.05, .09), (.64, .70), (.08, .13), (.52, .58)),
    "suv": ((.080, .090), (.17, .21), (.13, .16), (.05, .07), (.66, .72), (.06, .09), (.56, .62)),
    "van": ((.075, .085), (.18, .22), (.15, .19), (.05, .06), (.78, .84), (.06, .07), (.68, .73)),
}
SPLITS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Car:
    """One vehicle in car units: x from 0 (rear) to 1 (front), y up from the ground."""

    outline: np.ndarray  # body + cabin silhouette, (N, 2)
    windows: tuple[np.ndarray, ...]
    wheel_x: tuple[float, float]
    wheel_r: float
    rim_k: float
    spokes: int
    bottom: float  # body underside
    belt: float  # beltline (where the glass starts)
    hood: float  # top of the nose
    top: float  # roof
    seams: tuple[float, ...]
    width_frac: float  # image width share of the car seen side-on
    paint: np.ndarray
    glass: np.ndarray
    tyre: np.ndarray
    rim: np.ndarray
    trim: np.ndarray
    shade: tuple[float, float, float]  # body brightness at bottom, at roof, highlight strength


@dataclass(frozen=True)
class View:
    """Car units -> pixels: centre x, ground row, signed horizontal and vertical scale."""

    cx: float
    ground: float
    sx: float
    sy: float

    def px(self, points) -> np.ndarray:
        """Fixed-point (SHIFT) int32 pixel coordinates of car-unit points."""
        pts = np.asarray(points, dtype=np.float64)
        xy = np.stack([self.cx + (pts[..., 0] - 0.5) * self.sx, self.ground - pts[..., 1] * self.sy], -1)
        return np.round(xy * ONE).astype(np.int32)

    def box(self, x0: float, x1: float, y0: float, y1: float, shape: tuple[int, ...]) -> tuple[slice, slice]:
        """Rows and columns of the image covered by a car-unit rectangle."""
        corners = self.px([[x0, y0], [x1, y1]]) // ONE
        c0, c1 = np.clip(np.sort(corners[:, 0]) + [0, 1], 0, shape[1])
        r0, r1 = np.clip(np.sort(corners[:, 1]) + [0, 1], 0, shape[0])
        return slice(r0, r1), slice(c0, c1)


def car_id(seed: int, split: str, index: int) -> str:
    """12-hex-char Carvana-style id, a pure function of (seed, split, index)."""
    return hashlib.blake2b(f"carseg-synthetic:{seed}:{split}:{index}".encode(), digest_size=6).hexdigest()


def _colour(rng: np.random.Generator, near: np.ndarray | None = None, p_near: float = 0.0) -> np.ndarray:
    """A white, black, grey or saturated RGB colour, or with ``p_near`` one close to ``near``."""
    if near is not None and rng.random() < p_near:
        return np.clip(near + rng.normal(0, 12, 3), 0, 255)
    kind = rng.choice(4, p=[0.2, 0.15, 0.25, 0.4])
    if kind == 3:
        return 255 * np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1), rng.uniform(0.25, 0.95)))
    level = (rng.uniform(210, 250), rng.uniform(10, 45), rng.uniform(80, 190))[kind]
    return np.clip(level + rng.normal(0, 5, 3), 0, 255)


def _rounded(points: list[tuple[float, float]], radii: list[float], steps: int = 5) -> np.ndarray:
    """Polygon with each vertex replaced by a quadratic Bezier arc cutting ``radius`` off both edges."""
    pts = np.asarray(points, dtype=np.float64)
    out = []
    for i, (b, rad) in enumerate(zip(pts, radii)):
        if rad <= 0:
            out.append(b)
            continue
        a, c = pts[i - 1], pts[(i + 1) % len(pts)]
        p = b + (a - b) * min(rad / np.linalg.norm(a - b), 0.45)
        q = b + (c - b) * min(rad / np.linalg.norm(c - b), 0.45)
        t = np.linspace(0, 1, steps)[:, None]
        out.extend((1 - t) ** 2 * p + 2 * t * (1 - t) * b + t**2 * q)
    return np.array(out)


def _window_quads(edges: list, y0: float, y1: float) -> tuple[np.ndarray, ...]:
    """Glass quads between consecutive (left, right) edge functions x(y), from ``y0`` to ``y1``."""
    quads = []
    for left, right in zip(edges[::2], edges[1::2]):
        quad = [(left(y0), y0), (left(y1), y1), (right(y1), y1), (right(y0), y0)]
        quads.append(_rounded(quad, [0.008] * 4, steps=3))
    return tuple(quads)


def _random_car(rng: np.random.Generator) -> Car:
    """Random body style, proportions, colours and wheel design."""
    style = ("sedan", "hatch", "suv", "van")[rng.choice(4, p=[0.4, 0.25, 0.25, 0.1])]
    r, body_h, cabin_h, base_r, base_f, roof_r, roof_f = (rng.uniform(lo, hi) for lo, hi in STYLES[style])
    bottom = r * rng.uniform(0.55, 0.8)
    belt = bottom + body_h
    hood = belt - rng.uniform(0.015, 0.05)
    top = belt + cabin_h
    roof_mid = (roof_r + roof_f) / 2
    outline = _rounded(
        [(0.03, bottom), (0.97, bottom), (1.0, bottom + 0.035), (1.0, hood - 0.03), (0.985, hood - 0.006),
         (0.95, hood), (base_f, belt), (roof_f, top - 0.004), (roof_mid, top), (roof_r, top - 0.004),
         (base_r, belt), (0.04, belt), (0.01, belt - 0.015), (0.0, belt - 0.05), (0.0, bottom + 0.03)],
        [0.01, 0.01, 0.01, 0.006, 0.01, 0.02, 0.02, 0.04, 0.0, 0.04, 0.015, 0.01, 0.005, 0.005, 0.01],
    )
    inset = 0.022

    def pillar(x_base: float, x_roof: float, sign: float):
        return lambda y: x_base + (x_roof - x_base) * (y - belt) / cabin_h + sign * inset

    cuts = np.linspace(roof_r, roof_f, 2 + (rng.random() < 0.5) + (style == "van"))[1:-1]
    edges = [pillar(base_r, roof_r, 1.0)]
    for cut in cuts:
        edges += [lambda y, c=cut: c - 0.012, lambda y, c=cut: c + 0.012]
    edges.append(pillar(base_f, roof_f, -1.0))
    windows = _window_quads(edges, belt + 0.012, top - 0.016)
    paint = _colour(rng)
    return Car(
        outline=outline, windows=windows, wheel_x=(rng.uniform(0.17, 0.22), rng.uniform(0.78, 0.83)),
        wheel_r=r, rim_k=rng.uniform(0.55, 0.7), spokes=int(rng.choice([5, 6, 8, 10])),
        bottom=bottom, belt=belt, hood=hood, top=top, seams=(base_f - 0.01, *cuts, base_r + 0.02),
        width_frac=rng.uniform(0.76, 0.86), paint=paint,
        glass=np.array([20, 25, 35]) + rng.uniform(0, 35) + rng.normal(0, 4, 3),
        tyre=np.full(3, rng.uniform(15, 35)), rim=np.full(3, rng.uniform(60, 210)) + rng.normal(0, 4, 3),
        trim=paint * 0.55 if rng.random() < 0.5 else np.full(3, rng.uniform(20, 60)),
        shade=(rng.uniform(0.55, 0.8), rng.uniform(1.0, 1.2), rng.uniform(0.05, 0.25)),
    )


def _random_view(rng: np.random.Generator, car: Car, index: int, views: int, size: tuple[int, int]) -> View:
    """Turntable pose: facing from the angle's side, width squashed by |cos(angle)|, small jitter."""
    w, h = size
    angle = 2 * np.pi * index / views + rng.uniform(-0.12, 0.12)
    squash = max(abs(np.cos(angle)), MIN_SQUASH)
    ground = h * rng.uniform(0.8, 0.9)
    sy = min(car.width_frac * w * rng.uniform(0.97, 1.03), (ground - 0.05 * h) / car.top)
    return View(cx=w * (0.5 + rng.uniform(-0.03, 0.03)), ground=ground,
                sx=np.sign(np.cos(angle) or 1.0) * sy * squash, sy=sy)


def _lit_patch(rng: np.random.Generator, colours: tuple[np.ndarray, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Smooth vertical gradient with a vignette and uneven lighting, ``size`` = (w, h)."""
    top, bottom = colours
    t = np.linspace(0, 1, 5)[:, None, None]
    x = np.linspace(-1, 1, 7)[None, :, None]
    grid = ((1 - t) * top + t * bottom) * (1 - rng.uniform(0, 0.25) * x**2)
    grid += rng.normal(0, 3, grid.shape)
    return cv2.resize(np.clip(grid, 0, 255).astype(np.uint8), size, interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, size: tuple[int, int], paint: np.ndarray) -> np.ndarray:
    """Studio wall above a floor plane, meeting at a random horizon; colours sometimes near the paint."""
    w, h = size
    horizon = int(h * rng.uniform(0.42, 0.68))
    img = np.empty((h, w, 3), np.uint8)
    wall = _colour(rng, paint, 0.3)
    floor = _colour(rng, paint, 0.2)
    img[:horizon] = _lit_patch(rng, (wall, wall * rng.uniform(0.7, 1.15)), (w, horizon))
    img[horizon:] = _lit_patch(rng, (floor * rng.uniform(0.8, 1.1), floor), (w, h - horizon))
    if rng.random() < 0.6:
        thickness = max(1, int(h * rng.uniform(0.001, 0.006)))
        cv2.line(img, (0, horizon), (w, horizon), _colour(rng).tolist(), thickness, cv2.LINE_AA)
    return img


def _text(img: np.ndarray, rng: np.random.Generator, colour: list[float]) -> None:
    h, w = img.shape[:2]
    text = WORDS[rng.integers(len(WORDS))] if rng.random() < 0.7 else "".join(
        chr(c) for c in rng.integers(65, 91, rng.integers(2, 7)))
    font = FONTS[rng.integers(len(FONTS))]
    (_, text_h), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = h * rng.uniform(0.06, 0.28) / text_h
    org = (int(w * rng.uniform(-0.2, 0.8)), int(h * rng.uniform(0.15, 1.0)))
    cv2.putText(img, text, org, font, scale, colour, max(1, int(scale * rng.uniform(1, 3.5))), cv2.LINE_AA)


def _shape(img: np.ndarray, rng: np.random.Generator, colour: list[float]) -> None:
    """A rotated rectangle, an ellipse or a random polygon; filled or outlined."""
    h, w = img.shape[:2]
    centre = (w * rng.uniform(0, 1), h * rng.uniform(0, 1))
    half = (w * rng.uniform(0.03, 0.25), h * rng.uniform(0.03, 0.3))
    thickness = -1 if rng.random() < 0.6 else max(1, int(h * rng.uniform(0.005, 0.03)))
    kind = rng.integers(3)
    if kind == 1:
        axes = (int(half[0]), int(half[1]))
        cv2.ellipse(img, (int(centre[0]), int(centre[1])), axes, rng.uniform(0, 180), 0, 360, colour, thickness, cv2.LINE_AA)
        return
    if kind == 0:
        pts = cv2.boxPoints((centre, (2 * half[0], 2 * half[1]), rng.uniform(0, 90)))
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 8)))
        pts = np.stack([centre[0] + half[0] * np.cos(angles), centre[1] + half[1] * np.sin(angles)], -1)
    pts = [np.round(pts).astype(np.int32)]
    if thickness < 0:
        cv2.fillPoly(img, pts, colour, cv2.LINE_AA)
    else:
        cv2.polylines(img, pts, True, colour, thickness, cv2.LINE_AA)


def _stripes(img: np.ndarray, rng: np.random.Generator, colour: list[float]) -> None:
    h, w = img.shape[:2]
    angle = rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)])
    direction, normal = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    start = np.array([w * rng.uniform(0, 1), h * rng.uniform(0, 1)])
    spacing, thickness = h * rng.uniform(0.04, 0.15), max(1, int(h * rng.uniform(0.008, 0.04)))
    for k in range(rng.integers(3, 9)):
        mid = start + k * spacing * normal
        a, b = (mid - 2 * w * direction).astype(int), (mid + 2 * w * direction).astype(int)
        cv2.line(img, tuple(a.tolist()), tuple(b.tolist()), colour, thickness, cv2.LINE_AA)


def _distractors(img: np.ndarray, rng: np.random.Generator, paint: np.ndarray) -> None:
    """Text, shapes and stripes behind the car, a third of them in (almost) the car's paint."""
    for _ in range(rng.integers(2, 8)):
        draw = (_text, _shape, _stripes)[rng.choice(3, p=[0.4, 0.4, 0.2])]
        draw(img, rng, _colour(rng, paint, 0.33).tolist())


def _shadow(img: np.ndarray, rng: np.random.Generator, view: View) -> None:
    """Darken a soft ellipse on the floor under the car (drawn at 1/8 scale, then upsampled)."""
    h, w = img.shape[:2]
    half_w, half_h = abs(view.sx) * rng.uniform(0.48, 0.6), h * rng.uniform(0.02, 0.05)
    r0, r1 = max(0, int(view.ground - 4 * half_h)), min(h, int(view.ground + 3 * half_h))
    c0, c1 = max(0, int(view.cx - 1.5 * half_w)), min(w, int(view.cx + 1.5 * half_w))
    small = np.zeros(((r1 - r0) // 8 + 1, (c1 - c0) // 8 + 1), np.float32)
    centre = ((view.cx - c0) / 8, (view.ground - half_h / 2 - r0) / 8)
    cv2.ellipse(small, (int(centre[0]), int(centre[1])), (int(half_w / 8), int(half_h / 8)), 0, 0, 360, 1.0, -1)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, half_h / 8 * rng.uniform(0.6, 1.2)))
    darkness = 1 - rng.uniform(0.35, 0.75) * cv2.resize(small, (c1 - c0, r1 - r0))
    roi = img[r0:r1, c0:c1]
    roi[:] = (roi * darkness[..., None]).astype(np.uint8)


def _fill(img: np.ndarray, polys: list[np.ndarray], box: tuple[slice, slice], colour) -> None:
    """Antialiased fill of fixed-point polygons, clipped to a (rows, cols) box of ``img``."""
    roi = img[box]
    if roi.size:
        offset = np.array([box[1].start, box[0].start], np.int32) * ONE
        cv2.fillPoly(roi, [p - offset for p in polys], np.clip(colour, 0, 255).tolist(), cv2.LINE_AA, SHIFT)


def _draw_body(img: np.ndarray, car: Car, view: View) -> None:
    """Silhouette in horizontal bands of a vertical gradient with a highlight below the beltline."""
    outline = [view.px(car.outline)]
    lo, hi, spec = car.shade
    rows = np.arange(max(0, int(view.ground - car.top * view.sy) - 2), min(img.shape[0], int(view.ground) + 1), 6)
    cols = view.box(-0.01, 1.01, 0, 1, img.shape)[1]
    for r in rows:
        t = np.clip((view.ground - r - 3) / view.sy - car.bottom, 0, None) / (car.top - car.bottom)
        bump = np.exp(-(((view.ground - r - 3) / view.sy - car.belt + 0.03) / 0.02) ** 2)
        _fill(img, outline, (slice(r, r + 6), cols), car.paint * (lo + (hi - lo) * t) + 255 * spec * bump)


def _draw_details(img: np.ndarray, car: Car, view: View) -> None:
    """Bumpers, lights, seams, handles, highlight line and glass on top of the painted body."""
    outline, shape, thin = [view.px(car.outline)], img.shape, max(1, round(0.0025 * view.sy))
    for x0, x1 in ((0.9, 1.01), (-0.01, 0.08)):
        _fill(img, outline, view.box(x0, x1, car.bottom - 0.01, car.bottom + 0.045, shape), car.trim)
    _fill(img, outline, view.box(0.93, 1.01, car.hood - 0.05, car.hood - 0.018, shape), (245, 240, 215))
    _fill(img, outline, view.box(-0.01, 0.05, car.belt - 0.055, car.belt - 0.015, shape), (200, 25, 30))
    dark = np.clip(car.paint * 0.45, 0, 255).tolist()
    for i, x in enumerate(car.seams):
        seam = view.px([[x, car.bottom + 0.025], [x, car.belt - 0.006]]).tolist()
        cv2.line(img, *map(tuple, seam), dark, thin, cv2.LINE_AA, SHIFT)
        if i:  # door handle just ahead of each door's rear edge
            handle = view.px([[x + 0.025, car.belt - 0.03], [x + 0.05, car.belt - 0.03]]).tolist()
            cv2.line(img, *map(tuple, handle), dark, 3 * thin, cv2.LINE_AA, SHIFT)
    light = np.clip(car.paint + 0.55 * (255 - car.paint), 0, 255).tolist()
    line = view.px([[0.04, car.belt - 0.022], [car.seams[0], car.belt - 0.022], [0.94, car.hood - 0.022]])
    cv2.polylines(img, [line], False, light, 2 * thin, cv2.LINE_AA, SHIFT)
    windows = [view.px(w) for w in car.windows]
    cv2.fillPoly(img, windows, np.clip(car.glass, 0, 255).tolist(), cv2.LINE_AA, SHIFT)
    glare = view.box(car.seams[-1] + 0.05, car.seams[-1] + 0.12, car.belt, car.top, shape)
    _fill(img, windows, glare, car.glass * 1.5 + 25)


def _draw_wheels(img: np.ndarray, mask: np.ndarray, car: Car, view: View) -> None:
    """Dark wheel arches, tyres (also into the mask), rims with spokes, and hubs."""
    r, sx, sy = car.wheel_r, abs(view.sx), view.sy
    arch = min(1.15 * r, 0.9 * (car.belt - r))
    for x in car.wheel_x:
        centre = tuple(view.px([x, r]).tolist())

        def ellipse(target: np.ndarray, k: float, colour, start: float = 0, line: int = cv2.LINE_AA) -> None:
            axes = (round(k * sx * ONE), round(k * sy * ONE))
            cv2.ellipse(target, centre, axes, 0, start, 360, np.clip(colour, 0, 255).tolist(), -1, line, SHIFT)

        ellipse(img, arch, car.tyre * 0.5, start=180)
        ellipse(img, r, car.tyre)
        ellipse(mask, r, 1, line=cv2.LINE_8)
        ellipse(img, r * car.rim_k, car.rim)
        for a in np.linspace(0, 2 * np.pi, car.spokes, endpoint=False) + x * 7:
            tip = view.px([x + 0.93 * r * car.rim_k * np.cos(a), r + 0.93 * r * car.rim_k * np.sin(a)])
            cv2.line(img, centre, tuple(tip.tolist()), np.clip(car.rim * 0.55, 0, 255).tolist(),
                     max(1, round(0.06 * r * sy)), cv2.LINE_AA, SHIFT)
        ellipse(img, r * 0.18, car.rim * 0.7)


def _add_noise(img: np.ndarray, rng: np.random.Generator) -> None:
    """In-place Gaussian noise: random bytes mapped through a normal quantile table."""
    sigma = rng.uniform(1.5, 5.0)
    normal = NormalDist(128, sigma)
    lut = np.clip(np.round([normal.inv_cdf((i + 0.5) / 256) for i in range(256)]), 0, 255).astype(np.uint8)
    noise = cv2.LUT(np.frombuffer(rng.bytes(img.size), np.uint8).reshape(img.shape), lut)
    cv2.addWeighted(img, 1.0, noise, 1.0, -128.0, dst=img)


def render(seed: int, split: str, car_index: int, view_index: int, views: int,
           size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 photo and its {0, 1} mask; a pure function of its arguments."""
    car = _random_car(np.random.default_rng([seed, SPLITS[split], car_index]))
    rng = np.random.default_rng([seed, SPLITS[split], car_index, view_index + 1])
    view = _random_view(rng, car, view_index, views, size)
    img = _background(rng, size, car.paint)
    _distractors(img, rng, car.paint)
    _shadow(img, rng, view)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [view.px(car.outline)], 1, cv2.LINE_8, SHIFT)
    _draw_body(img, car, view)
    _draw_details(img, car, view)
    _draw_wheels(img, mask, car, view)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    _add_noise(img, rng)
    return img, mask


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def _gif(mask: np.ndarray) -> bytes:
    """Two-colour palette GIF: index 0 black, 1 white (0/255 after ``convert("L")``)."""
    image = Image.fromarray(mask, mode="P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    buf = io.BytesIO()
    image.save(buf, format="GIF")
    return buf.getvalue()


def _make(job: tuple[Path, Path, int, str, int, int, int, tuple[int, int]]) -> bool:
    """Render and write one image/mask pair unless both exist; True when something was written."""
    image_path, mask_path, seed, split, car_index, view_index, views, size = job
    if image_path.exists() and mask_path.exists():
        return False
    img, mask = render(seed, split, car_index, view_index, views, size)
    for path, encode, array in ((image_path, _jpeg, img), (mask_path, _gif, mask)):
        if not path.exists():
            write_bytes_atomic(path, encode(array))
    return True


def generate_dataset(data_dir: Path, num_cars: int = 60, views: int = 8, num_test_cars: int = 4,
                     size: tuple[int, int] = (1918, 1280), seed: int = 0, workers: int | None = None) -> dict:
    """Write train/, train_masks/, test/, test_masks/ and SYNTHETIC.txt under ``data_dir``.

    Existing files are kept, so an interrupted run can simply be repeated. Returns counts.
    """
    if min(num_cars, num_test_cars, seed) < 0 or views < 1 or min(size) < 32:
        raise ValueError("need num_cars, num_test_cars, seed >= 0, views >= 1 and both sides of size >= 32")
    data_dir = Path(data_dir)
    jobs = []
    for split, cars in (("train", num_cars), ("test", num_test_cars)):
        (data_dir / split).mkdir(parents=True, exist_ok=True)
        (data_dir / f"{split}_masks").mkdir(parents=True, exist_ok=True)
        for index in range(cars):
            for view in range(views):
                name = f"{car_id(seed, split, index)}_{view + 1:02d}"
                jobs.append((data_dir / split / f"{name}.jpg", data_dir / f"{split}_masks" / f"{name}_mask.gif",
                             seed, split, index, view, views, tuple(size)))
    write_bytes_atomic(data_dir / "SYNTHETIC.txt", _note(num_cars, views, num_test_cars, size, seed).encode())
    pool, cv2_threads = ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)), cv2.getNumThreads()
    cv2.setNumThreads(1)  # parallel over images, not inside OpenCV calls: ~1.6x faster on 2 cores
    try:
        written = sum(progress_bar(iterable=pool.map(_make, jobs), total=len(jobs), desc="synthetic", unit="img"))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C or an error, finish only the images in flight
        cv2.setNumThreads(cv2_threads)
    return {"train_images": num_cars * views, "test_images": num_test_cars * views,
            "written": written, "skipped": len(jobs) - written}


def _note(num_cars: int, views: int, num_test_cars: int, size: tuple[int, int], seed: int) -> str:
    args = f"--num-cars {num_cars} --views {views} --num-test-cars {num_test_cars} --size {size[0]}x{size[1]} --seed {seed}"
    return (
        "Synthetic Carvana-layout dataset made by carseg.data.synthetic: drawn cars, not photos.\n"
        f"train/ + train_masks/: {num_cars} cars x {views} views; test/ + test_masks/: {num_test_cars} cars x {views} views.\n"
        f"Images {size[0]}x{size[1]} JPEG (quality {JPEG_QUALITY}); masks are 0/255 GIFs named <image>_mask.gif.\n"
        f"Regenerate: python -m carseg.commands.download_dataset --data-dir DIR {args}\n"
    )
