"""A soft contact shadow under the car, derived from its alpha: the car's silhouette squashed flat onto the
ground line (its lowest rows), blurred."""
import cv2
import numpy as np

SQUASH = 0.08  # the shadow's height as a share of the car's height
SCALE = 4      # drawn at 1/4 scale: a wide blur at full resolution costs ~100 ms, and the shadow has no detail


def contact_shadow(alpha: np.ndarray, strength: float, softness: float) -> np.ndarray:
    """Shadow opacity (float32, 0..``strength``) at ``alpha``'s size. ``softness``: blur as a share of the car's width."""
    small = cv2.resize(alpha, (max(1, alpha.shape[1] // SCALE), max(1, alpha.shape[0] // SCALE)), interpolation=cv2.INTER_AREA)
    shadow = _shadow(small, strength, softness)
    return cv2.resize(shadow, (alpha.shape[1], alpha.shape[0]), interpolation=cv2.INTER_LINEAR)


def _shadow(alpha: np.ndarray, strength: float, softness: float) -> np.ndarray:
    rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    cols = np.nonzero(alpha.max(axis=0) > 0.5)[0]
    if rows.size == 0:
        return np.zeros_like(alpha)
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    car = alpha[top:bottom]
    flat_h = max(1, round((bottom - top) * SQUASH))
    flat = cv2.resize(car, (alpha.shape[1], flat_h), interpolation=cv2.INTER_AREA)
    shadow = np.zeros_like(alpha)
    y0 = max(0, bottom - flat_h // 2)  # centred on the ground line: the tyres sit in it, half of it shows below
    shadow[y0: y0 + flat_h] = flat[: alpha.shape[0] - y0]
    sigma = max(0.5, softness * (int(cols[-1]) - int(cols[0]) + 1))
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigmaX=sigma, sigmaY=sigma / 3)
    peak = float(shadow.max())
    return shadow * np.float32(strength / peak) if peak > 0 else shadow
