"""carseg.atomic: a write lands whole or not at all."""
import pytest

from carseg.atomic import atomic_path, write_bytes_atomic


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    (tmp_path / ".out.csv.tmp").write_text("left by an interrupted run")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("check failed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".car.png.tmp").symlink_to(victim)
    write_bytes_atomic(tmp_path / "out" / "car.png", b"cut-out")
    assert victim.read_text() == "keep me" and (tmp_path / "out" / "car.png").read_bytes() == b"cut-out"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["car.png"]
