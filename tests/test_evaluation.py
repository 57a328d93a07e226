"""Metrics on hand-countable masks, and ``bin/evaluate.py`` end to end with traced models."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pytest
from scipy.stats import spearmanr
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from carseg.evaluation import metrics
from carseg.data.images import read_image
from carseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from carseg.commands.evaluate import main as evaluate_main
from carseg.evaluation.metrics import Confusion, confusion, roc_auc, scores
from carseg.training.models.unet import UNet

from conftest import ROOT, save_traced

MODEL_HW = (64, 96)  # traced input size; the Predictor resizes the longest side to 96


# ---------------------------------------------------------------------------- traced models


class RedOracle(nn.Module):
    """Logits = 20 * (red - 0.5) after undoing the normalisation: 'car' = pixels with red > 127."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, :1] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        return 20 * (red - 0.5)


@pytest.fixture(scope="module")
def traced_unet(tmp_path_factory, tiny_dataset) -> Path:
    """A randomly initialised tiny UNet, traced like ``catalyst-dl trace`` does (no training). Its output is shifted so
    that half of a test photo is 'car': untrained, it would call every pixel car whatever the photo."""
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2).eval()
    photo = cv2.resize(read_image(sorted((tiny_dataset / "test").glob("*.jpg"))[0]), MODEL_HW[::-1], interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(((photo / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        model.head.bias -= model(x).median()
    return save_traced(model, tmp_path_factory.mktemp("unet") / "traced-best-forward.pth")


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> Path:
    return save_traced(RedOracle(), tmp_path_factory.mktemp("oracle") / "oracle.pth")


# ---------------------------------------------------------------------------- metrics


def test_confusion_and_scores_counted_by_hand():
    pred = np.array([[1, 1, 0], [0, 1, 0]])
    truth = np.array([[1, 0, 0], [1, 1, 0]], np.uint8) * 255  # any nonzero value is foreground
    assert confusion(pred, truth) == Confusion(tp=2, fp=1, fn=1, tn=2)
    got = scores(pred, truth)
    expected = {"dice": 4 / 6, "iou": 2 / 4, "accuracy": 4 / 6, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}
    assert got.keys() == set(metrics.METRICS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    assert math.isnan(got["roc_auc"])  # no probabilities given


def test_precision_and_recall_differ():
    pred = np.array([[1, 1, 1], [1, 0, 0]])
    truth = np.array([[1, 0, 0], [0, 0, 0]])
    c = confusion(pred, truth)
    assert c == Confusion(tp=1, fp=3, fn=0, tn=2)
    assert metrics.precision(c) == pytest.approx(1 / 4) and metrics.recall(c) == 1.0
    assert metrics.f1(c) == pytest.approx(2 * 0.25 / 1.25) == pytest.approx(metrics.dice(c))
    assert metrics.iou(c) == pytest.approx(1 / 4)


def test_empty_mask_conventions():
    empty, full = np.zeros((2, 3)), np.ones((2, 3))
    both_empty = scores(empty, empty)
    assert all(both_empty[m] == 1.0 for m in ("dice", "iou", "accuracy", "precision", "recall", "f1"))
    missed = scores(empty, full)  # predicted nothing, the car is everywhere
    assert all(missed[m] == 0.0 for m in ("dice", "iou", "accuracy", "precision", "recall", "f1"))
    hallucinated = scores(full, empty)
    assert all(hallucinated[m] == 0.0 for m in ("dice", "iou", "accuracy", "precision", "recall", "f1"))
    with pytest.raises(ValueError):
        confusion(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((40, 50)) < 0.3
    prob = np.clip(rng.normal(0.4 + 0.25 * truth, 0.2), 0, 1).astype(np.float32)
    assert roc_auc(prob, truth) == pytest.approx(roc_auc_score(truth.ravel(), prob.ravel()), abs=1e-3)
    # Ties (a few distinct values, exactly 0 and 1 included) are counted 1/2 like sklearn does.
    coarse = np.round(prob * 4) / 4
    assert roc_auc(coarse, truth) == pytest.approx(roc_auc_score(truth.ravel(), coarse.ravel()), abs=1e-6)


def test_roc_auc_extremes_and_one_class():
    truth = np.array([[0, 0, 1], [0, 1, 1]])
    assert roc_auc(truth * 0.8 + 0.1, truth) == 1.0
    assert roc_auc(1 - truth, truth) == 0.0
    assert math.isnan(roc_auc(np.random.default_rng(0).random((2, 3)), np.zeros((2, 3))))
    assert math.isnan(roc_auc(np.random.default_rng(0).random((2, 3)), np.ones((2, 3))))


# ---------------------------------------------------------------------------- the CLI


def write_pair(images: Path, masks: Path, name: str, hw, car_box, extra_truth=None, mask_hw=None, seed=0) -> np.ndarray:
    """A PNG photo whose red pixels (red > 127) are exactly ``car_box``; its mask; returns the mask (0/1).

    ``extra_truth`` adds a box to the mask that is not red (false negatives for the oracle).
    """
    rng = np.random.default_rng(seed)
    h, w = hw
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[..., 0] = rng.integers(0, 100, (h, w))  # background: red channel low
    mask = np.zeros((h, w), np.uint8)
    for box, red in ((car_box, True), (extra_truth, False)):
        if box is not None:
            y0, y1, x0, x1 = box
            mask[y0:y1, x0:x1] = 1
            if red:
                image[y0:y1, x0:x1, 0] = 220
    cv2.imwrite(str(images / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    saved = mask if mask_hw is None else cv2.resize(mask, mask_hw[::-1], interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(masks / f"{name}_mask.png"), saved * 255)
    return mask


@pytest.fixture
def labelled(tmp_path):
    """Photos with known answers for the red oracle, one broken pair and one unmatched image."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    expected = {}
    write_pair(images, masks, "exact", (64, 96), (10, 50, 20, 70), seed=1)
    expected["exact"] = 1.0
    truth = write_pair(images, masks, "missed", (64, 96), (8, 40, 10, 60), extra_truth=(50, 54, 80, 85), seed=2)
    tp = int(truth.sum()) - 20
    expected["missed"] = 2 * tp / (2 * tp + 20)
    write_pair(images, masks, "odd", (333, 517), (60, 300, 40, 470), seed=3)
    write_pair(images, masks, "nocar", (64, 96), None, seed=4)
    expected["nocar"] = 1.0  # nothing to find, nothing found
    write_pair(images, masks, "mismatch", (64, 96), (10, 50, 20, 70), mask_hw=(60, 90), seed=5)
    cv2.imwrite(str(images / "unlabelled.png"), np.zeros((8, 8, 3), np.uint8))
    return images, masks, expected


def read_csv(path: Path):
    with path.open(newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def test_cli_scores_known_answers(oracle, labelled, tmp_path, capsys):
    images, masks, expected = labelled
    out = tmp_path / "out"
    # --refine none: the known answers are the oracle's own masks (a guided filter would move their edges
    # in these noise photos, whose grey levels hide the red box's edge)
    code = evaluate_main([str(oracle), "--images", str(images), "--masks", str(masks), "--workers", "0",
                          "--batch-size", "3", "--csv", str(out / "scores.csv"), "--json", str(out / "scores.json"),
                          "--overlays", str(out / "overlays"), "--num-overlays", "2", "--quiet", "--device", "cpu",
                          "--refine", "none", "--alpha", "hard"])
    captured = capsys.readouterr()
    assert code == 1  # the size-mismatched pair failed; the other four were still scored
    stderr = captured.err.strip().splitlines()
    assert any("mismatch_mask.png" in line and "differs from image mismatch.png" in line for line in stderr)
    assert any("warning" in line and "unlabelled.png" in line for line in stderr)

    rows = read_csv(out / "scores.csv")
    assert set(rows) == {"exact.png", "missed.png", "odd.png", "nocar.png"}
    assert list(next(iter(rows.values()))) == ["image", "kind", "size", "car_fraction", "confidence", "dice", "iou", "accuracy",
                                               "precision", "recall", "f1", "roc_auc", "boundary_iou", "alpha_mae"]
    for name, dice in expected.items():
        assert float(rows[f"{name}.png"]["dice"]) == pytest.approx(dice, abs=1e-6), name
    assert float(rows["exact.png"]["roc_auc"]) == 1.0 and rows["nocar.png"]["roc_auc"] == ""  # AUC undefined
    assert float(rows["missed.png"]["recall"]) < 1.0 == float(rows["missed.png"]["precision"])
    assert float(rows["odd.png"]["dice"]) > 0.97  # 517x333 scored at full size after a 96-pixel forward pass

    report = json.loads((out / "scores.json").read_text())
    assert report["n"] == 4 and len(report["per_image"]) == 4 and report["failed"] == [str(images / "mismatch.png")]
    mean_dice = np.mean([float(r["dice"]) for r in rows.values()])
    assert report["mean"]["dice"] == pytest.approx(mean_dice, abs=1e-6)
    assert report["per_image"][[r["image"] for r in report["per_image"]].index("nocar.png")]["roc_auc"] is None

    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    worst_two = sorted(rows, key=lambda n: float(rows[n]["dice"]))[:2]
    assert overlays == [f"{rank}_{Path(name).stem}.png" for rank, name in enumerate(worst_two, 1)]
    picture = cv2.imread(str(out / "overlays" / overlays[0]))
    assert picture.shape[1] == (517 if worst_two[0] == "odd.png" else 96) and picture.shape[0] > 64

    lines = captured.out.strip().splitlines()
    means = report["mean"]
    assert lines[-1] == f"dice={means['dice']:.4f} iou={means['iou']:.4f} n=4"
    assert any(line.split()[0] == "roc_auc" for line in lines[:-1])  # the table of means


def test_cli_reports_dice_by_kind_and_size_and_the_confidence_rank_correlation(oracle, labelled, tmp_path, capsys):
    images, masks, _ = labelled
    kinds = {"exact": "studio", "missed": "street", "odd": "street", "nocar": "video"}
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,mask,kind\n" + "".join(f"{images / n}.png,{masks / n}_mask.png,{k}\n" for n, k in kinds.items()))
    code = evaluate_main([str(oracle), "--pairs", str(pairs), "--workers", "0", "--quiet", "--device", "cpu", "--refine", "none",
                          "--csv", str(tmp_path / "scores.csv"), "--json", str(tmp_path / "scores.json")])
    assert code == 0
    rows = read_csv(tmp_path / "scores.csv")
    assert {name[:-4]: row["kind"] for name, row in rows.items()} == kinds
    assert rows["nocar.png"]["size"] == "small (<5%)" and float(rows["nocar.png"]["car_fraction"]) == 0
    report = json.loads((tmp_path / "scores.json").read_text())
    street = np.mean([float(rows[n]["dice"]) for n in ("missed.png", "odd.png")])
    assert report["mean_by_kind"]["street"]["n"] == 2 and report["mean_by_kind"]["street"]["dice"] == pytest.approx(street)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["street", "2", f"{street:.4f}"] for line in lines)
    spearman = spearmanr([float(r["confidence"]) for r in rows.values()], [float(r["dice"]) for r in rows.values()]).statistic
    assert report["confidence_spearman"] == pytest.approx(spearman)
    assert f"confidence vs dice: Spearman {spearman:.3f}" in lines


def test_cli_real_unet_on_tiny_dataset(traced_unet, tiny_dataset, tmp_path):
    """A traced UNet through bin/evaluate.py, photos decoded in 2 worker processes and batched by 2, scores each photo
    exactly as one photo at a time in this process does; --tta hflip reaches the model (it changes the scores)."""
    data = ["--images", str(tiny_dataset / "test"), "--masks", str(tiny_dataset / "test_masks"), "--device", "cpu"]
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "evaluate.py"), str(traced_unet), *data, "--workers", "2",
                             "--batch-size", "2", "--tta", "hflip", "--json", str(tmp_path / "r.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())

    def one_at_a_time(tta: str) -> dict[str, float]:
        assert evaluate_main([str(traced_unet), *data, "--workers", "0", "--batch-size", "1", "--tta", tta, "--quiet",
                              "--json", str(tmp_path / f"{tta}.json")]) == 0
        return {row["image"]: row["dice"] for row in json.loads((tmp_path / f"{tta}.json").read_text())["per_image"]}

    dice = {row["image"]: row["dice"] for row in report["per_image"]}
    expected, without_tta = one_at_a_time("hflip"), one_at_a_time("none")
    count = len(list((tiny_dataset / "test").glob("*.jpg")))
    assert report["n"] == count == len(set(dice.values())) and report["failed"] == [] and report["tta"] == "hflip"
    assert dice == pytest.approx(expected, abs=1e-6)
    assert dice != pytest.approx(without_tta, abs=1e-3)
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"dice={report['mean']['dice']:.4f} iou={report['mean']['iou']:.4f} n={count}"


def test_cli_unreadable_image_is_one_failure(oracle, labelled, capsys):
    images, masks, _ = labelled
    (images / "mismatch.png").unlink()
    (images / "exact.png").write_bytes(b"not a png")
    code = evaluate_main([str(oracle), "--images", str(images), "--masks", str(masks), "--workers", "0", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert [line for line in captured.err.splitlines() if line.startswith("failed:")] == [
        line for line in captured.err.splitlines() if "exact.png" in line and "not a readable image" in line]
    assert captured.out.strip().splitlines()[-1].endswith(" n=3")


def test_cli_errors_are_one_line(call, tmp_path, labelled):
    images, masks, _ = labelled
    result = call(evaluate_main, tmp_path / "missing.pth", "--images", images, "--masks", masks)
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("evaluate.py: warning")]
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error: ") and "missing.pth" in lines[0]


def test_cli_no_pairs(oracle, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert evaluate_main([str(oracle), "--images", str(tmp_path / "a"), "--masks", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evaluate.py: error: ") and "--mask-suffix" in err[0]


def test_cli_pairs_csv_scores_the_same_as_folders(oracle, labelled, tmp_path, capsys):
    images, masks, expected = labelled
    names = ["exact", "missed"]
    csv_path = tmp_path / "valid.csv"
    csv_path.write_text("image,mask\n" + "".join(f"{images / n}.png,{masks / n}_mask.png\n" for n in names))
    args = ["--workers", "0", "--quiet", "--device", "cpu", "--refine", "none", "--alpha", "hard", "--csv", str(tmp_path / "s.csv")]
    assert evaluate_main([str(oracle), "--pairs", str(csv_path), *args]) == 0
    rows = read_csv(tmp_path / "s.csv")
    assert set(rows) == {"exact.png", "missed.png"}
    for name in names:
        assert float(rows[f"{name}.png"]["dice"]) == pytest.approx(expected[name], abs=1e-6)
    capsys.readouterr()
    for bad in (["--pairs", str(csv_path), "--images", str(images)], ["--images", str(images)], []):
        assert evaluate_main([str(oracle), *bad, "--quiet"]) == 1
        assert capsys.readouterr().err.strip() == "evaluate.py: error: give either --images DIR --masks DIR, or --pairs CSV"
