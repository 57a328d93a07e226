"""carseg.data.storage: IN and OUT as URIs, through pyarrow's filesystems (LocalFileSystem, SubTreeFileSystem here;
S3 and GCS take the same calls), planned, skipped and written as folders are."""
import pickle
from pathlib import Path

import cv2
import pytest

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.data.storage import StoredPath, check_writable, files_among, location, object_store, write_atomic
from carseg.errors import CarsegError
from carseg.inference.background_removal import plan_jobs

from conftest import red_car_photo

fs_module = pytest.importorskip("pyarrow.fs")


@pytest.fixture
def tree(tmp_path) -> StoredPath:
    """``tmp_path`` as the root of a SubTreeFileSystem, as a bucket is the root of its store."""
    return StoredPath(fs_module.SubTreeFileSystem(str(tmp_path), fs_module.LocalFileSystem()), "", "tree")


def test_a_stored_path_reads_lists_and_writes_atomically(tree, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("in/a.jpg", "in/.hidden.jpg", "in/notes.txt", "in/sub/b.png"):
        (tmp_path / name).write_bytes(name.encode())
    photos = tree / "in"
    assert photos.is_dir() and not (tree / "none").exists() and str(photos / "a.jpg") == "tree://in/a.jpg"
    assert sorted(p.name for p in photos.iterdir()) == [".hidden.jpg", "a.jpg", "notes.txt", "sub"]
    assert sorted(str(p.relative_to(photos)) for p in photos.rglob("*") if p.is_file())[-1] == "sub/b.png"
    assert (photos / "sub" / "b.png").read_bytes() == b"in/sub/b.png" and (photos / "a.jpg").fetched().read_bytes() == b"in/a.jpg"
    out = tree / "out" / "deep"
    write_atomic(out / "x.png", b"picture")  # folders made, written under a hidden name and moved
    assert (tmp_path / "out/deep/x.png").read_bytes() == b"picture" and sorted(p.name for p in (tmp_path / "out/deep").iterdir()) == ["x.png"]
    assert files_among([out / "x.png", out / "y.png", tree / "in/a.jpg"]) == {out / "x.png", tree / "in/a.jpg"}
    check_writable(tree / "fresh")
    assert (tmp_path / "fresh").is_dir() and not list((tmp_path / "fresh").iterdir())
    again = pickle.loads(pickle.dumps(out / "x.png"))  # as a Ray actor or a worker process gets it
    assert again == out / "x.png" and again.read_bytes() == b"picture" and not object_store(again)
    with pytest.raises(FileNotFoundError):
        (tree / "in/none.jpg").read_bytes()


def test_a_failed_write_leaves_nothing(tree, tmp_path):
    (tmp_path / "out").write_bytes(b"a file where OUT's folder would be")
    with pytest.raises(OSError):
        write_atomic(tree / "out" / "x.png", b"picture")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_object_stores_put_once_and_are_told_apart():
    s3 = fs_module.S3FileSystem(anonymous=True, region="us-east-1")  # built, never asked: no network
    assert object_store(StoredPath(s3, "bucket/photos", "s3")) and not object_store(Path("photos"))
    assert object_store(StoredPath(fs_module.SubTreeFileSystem("bucket", s3), "photos", "s3"))
    assert location("C:\\photos") == Path("C:\\photos") and location("photos") == Path("photos")
    assert str(location("file:///tmp/photos/")) == "file:///tmp/photos" and str(location("file:/tmp/a%20b")) == "file:///tmp/a b"
    with pytest.raises(CarsegError) as refused:  # credentials in a URI are never shown
        location("foo://KEY:SECRET@bucket/photos?secret_key=SECRET")
    assert str(refused.value).startswith("foo://bucket/photos: cannot open it (") and "SECRET" not in str(refused.value)


def test_plan_jobs_on_a_stored_folder_as_on_a_path(tree, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a.jpg", "B.PNG", ".hidden.jpg", "notes.txt", "sub/c.webp"):
        (tmp_path / "in" / name).write_bytes(b"x")
    for recursive in (False, True):
        stored, ignored = plan_jobs(tree / "in", tree / "out", "png", True, recursive)
        local, local_ignored = plan_jobs(tmp_path / "in", tmp_path / "out", "png", True, recursive)
        assert ignored == local_ignored == 1
        assert [(str(j.source.relative_to(tree)), str(j.output.relative_to(tree)), str(j.mask.relative_to(tree)))
                for j in stored] == [(str(j.source.relative_to(tmp_path)), str(j.output.relative_to(tmp_path)),
                                      str(j.mask.relative_to(tmp_path))) for j in local]
    jobs, _ = plan_jobs(tree / "in", tree / "in", "png", False, False)  # OUT = IN: outputs beside their photos
    assert [j.output.name for j in jobs] == ["B.png", "a.png"]


def test_a_local_run_on_file_uris_equals_one_on_folders(call, tmp_path, oracle_model):
    """Without --ray, file:// URIs go through pyarrow too (its local filesystem forks cleanly; object stores need
    --ray): the same files, bytes and summary as the run on folders, and a rerun skips them all."""
    photos = tmp_path / "in"
    photos.mkdir()
    for number in range(3):
        cv2.imwrite(str(photos / f"car_{number}.jpg"), red_car_photo(160 + 24 * number, 240 + 17 * number)[0][..., ::-1])
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    local = call(car_segmentation, photos, tmp_path / "local", oracle_model, "--workers", "0", "--quiet", "--save-mask")
    uris = call(car_segmentation, photos.as_uri(), (tmp_path / "uris").as_uri(), oracle_model, "--workers", "1",
                "--quiet", "--save-mask")
    assert local.returncode == uris.returncode == 1 and "done 3, skipped 0 (already there), failed 1" in uris.stdout
    assert [line for line in uris.stderr.splitlines() if line.startswith("failed:")] == [
        line.replace(str(photos), photos.as_uri()) for line in local.stderr.splitlines() if line.startswith("failed:")]
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "uris").iterdir()) and len(names) == 7  # 3 cut-outs, 3 masks, csv
    for name in names[:-1]:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "uris" / name).read_bytes(), name
    again = call(car_segmentation, photos.as_uri(), (tmp_path / "uris").as_uri(), oracle_model, "--quiet", "--save-mask")
    assert "done 0, skipped 3 (already there), failed 1" in again.stdout


def test_out_is_in_as_a_uri_reruns_skip_their_own_outputs(call, tmp_path, oracle_model):
    photos = tmp_path / "in"
    photos.mkdir()
    for number in range(2):
        cv2.imwrite(str(photos / f"car_{number}.jpg"), red_car_photo(160, 240 + 17 * number)[0][..., ::-1])
    first = call(car_segmentation, photos.as_uri(), photos.as_uri(), oracle_model, "--workers", "0", "--quiet")
    again = call(car_segmentation, photos.as_uri(), photos.as_uri(), oracle_model, "--workers", "0", "--quiet",
                 "--overwrite")
    assert first.returncode == again.returncode == 0 and "done 2, skipped 0" in again.stdout, again.stdout  # not 4
