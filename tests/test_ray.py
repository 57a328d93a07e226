"""``car_segmentation.py IN OUT --ray``: the same cut-outs as the local run, on a local Ray and on a two-node cluster;
IN and OUT as folders or as file:// URIs, read and written through pyarrow's filesystem (as s3:// and gs:// are)."""
import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from carseg.commands.car_segmentation import main as car_segmentation

from conftest import red_car_photo

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's runs (2 CPUs, no dashboard); ``--ray`` joins it instead of starting its own."""
    from carseg.inference.ray_data import connect

    with connect("local", num_cpus=2):
        yield


def photo_folder(folder: Path, count: int = 5) -> Path:
    folder.mkdir()
    for number in range(count):
        cv2.imwrite(str(folder / f"car_{number}.jpg"), red_car_photo(160 + 24 * number, 240 + 17 * number)[0][..., ::-1])
    return folder


def summary_rows(out: Path) -> dict:
    with open(out / "summary.csv", newline="") as handle:
        return {row["photo"].rsplit("/", 1)[-1]: row for row in csv.DictReader(handle)}


def alpha(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., 3] > 0


def test_ray_cuts_out_what_the_local_run_does(local_ray, call, tmp_path, oracle_model):
    photos = photo_folder(tmp_path / "in")
    local = call(car_segmentation, photos, tmp_path / "local", oracle_model, "--workers", "0", "--quiet")
    in_uri, out_uri = photos.as_uri(), (tmp_path / "ray").as_uri()  # through pyarrow's filesystem, as s3:// would be
    on_ray = call(car_segmentation, in_uri, out_uri, oracle_model, "--ray", "--batch-size", "2", "--quiet")
    assert local.returncode == on_ray.returncode == 0, on_ray.stderr
    assert "done 5, skipped 0 (already there), failed 0" in on_ray.stdout
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(names) == 6  # 5 cut-outs + summary
    for name in names[:-1]:
        a, b = alpha(tmp_path / "local" / name), alpha(tmp_path / "ray" / name)
        assert (a & b).sum() / (a | b).sum() >= 0.999
    rows = summary_rows(tmp_path / "ray")
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys((f"car_{n}.jpg" for n in range(5)), "done")
    assert rows["car_0.jpg"]["photo"] == f"{in_uri}/car_0.jpg" and rows["car_0.jpg"]["output"] == f"{out_uri}/car_0.png"
    assert not list((tmp_path / "ray").glob(".*"))  # no temporary file left
    again = call(car_segmentation, in_uri, out_uri, oracle_model, "--ray", "--quiet")
    assert again.returncode == 0 and "done 0, skipped 5 (already there)" in again.stdout


@pytest.mark.parametrize("as_uri", [False, True], ids=["folders", "uris"])
def test_ray_reports_a_corrupt_photo_and_goes_on(local_ray, call, tmp_path, oracle_model, as_uri):
    photos = photo_folder(tmp_path / "in", count=3)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    name = (lambda path: path.as_uri()) if as_uri else (lambda path: path)
    ran = call(car_segmentation, name(photos), name(tmp_path / "out"), oracle_model, "--ray", "--quiet")
    assert ran.returncode == 1 and "done 3, skipped 0 (already there), failed 1" in ran.stdout
    failed = [line for line in ran.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and f"{name(photos / 'broken.jpg')}: " in failed[0]
    rows = summary_rows(tmp_path / "out")
    assert rows["broken.jpg"]["status"] == "failed" and rows["broken.jpg"]["error"] and rows["car_0.jpg"]["status"] == "done"


def test_ray_on_a_two_node_cluster(call, tmp_path, oracle_model):
    """Two Ray nodes of one CPU each (ray.cluster_utils): an actor on each, the folder shared."""
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the module's local Ray, if it ran
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        photos = photo_folder(tmp_path / "in", count=4)
        ran = call(car_segmentation, photos, tmp_path / "out", oracle_model, "--ray", cluster.address,
                   "--batch-size", "1", "--quiet")
        assert ran.returncode == 0 and "done 4, skipped 0 (already there), failed 0" in ran.stdout, ran.stderr
        assert ray.is_initialized() is False  # joined, used and left: the cluster itself keeps running
        assert all(alpha(tmp_path / "out" / f"car_{n}.png").any() for n in range(4))
    finally:
        ray.shutdown()
        cluster.shutdown()


# an S3 bucket whose endpoint answers nothing (no region lookup, no network needed): pyarrow opens the URI
UNREACHABLE = "s3://bucket/photos?region=us-east-1&endpoint_override=127.0.0.1:9&scheme=http"


def test_storage_that_cannot_be_opened_is_one_line(call, tmp_path, oracle_model):
    unknown = call(car_segmentation, "foo://bucket/photos", tmp_path / "out", oracle_model, "--ray")
    assert unknown.returncode == 2 and ("error: argument IN: foo://bucket/photos: cannot open it (Unrecognized "
                                        "filesystem type in URI: foo://bucket/photos); IN and OUT are folders or URIs") in unknown.stderr
    missing = call(car_segmentation, (tmp_path / "none").as_uri(), tmp_path / "out", oracle_model, "--ray")
    assert missing.returncode == 1 and f"{(tmp_path / 'none').as_uri()}: input folder not found" in missing.stderr
    unreachable = call(car_segmentation, UNREACHABLE, tmp_path / "out", oracle_model, "--ray")
    assert unreachable.returncode == 1 and len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr
    assert "s3://bucket/photos: cannot read there (" in unreachable.stderr and "Could not connect" in unreachable.stderr
    local = call(car_segmentation, UNREACHABLE, tmp_path / "out", oracle_model)
    assert local.returncode == 1 and "s3://bucket/photos: object storage is read and written by --ray runs; add --ray" in local.stderr
    assert not (tmp_path / "out").exists()
