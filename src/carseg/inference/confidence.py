"""How much to trust a cut-out, from the probability map alone: the Dice the thresholded mask would score if the
probabilities were calibrated. Uncertain pixels (near the threshold) along a long or ragged edge, or a whole region
the network hesitates on, lower it; a photo where no car is found scores 0. The model card gives its Spearman
correlation with the true Dice on the validation photos."""
import numpy as np


def confidence(prob: np.ndarray, hard: np.ndarray) -> float:
    """``2 * sum(p * h) / (sum(p) + sum(h))`` for probabilities ``p`` and the cut-out's 0/255 mask ``h`` (same size);
    pixels outside the kept region count through ``sum(p)``: a second car left out lowers it too."""
    kept = hard > 0
    total = float(prob.sum(dtype=np.float64)) + float(np.count_nonzero(kept))
    if not kept.any() or total == 0:
        return 0.0
    return 2 * float(prob[kept].sum(dtype=np.float64)) / total
