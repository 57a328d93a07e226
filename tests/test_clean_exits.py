"""SIGINT (Ctrl-C) and SIGTERM, sent to a command's whole process group as a terminal or a job scheduler does, end it
with one line and exit code 128 + the signal: no traceback (none from loader workers either), no temporary file, no
``pymp-*`` folder in the system temp folder; a stopped folder run or training goes on when rerun."""
import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Tuple

import pytest
import torch
from PIL import Image

from carseg.training.curves import read_metrics_csv

from conftest import ROOT, red_car_photo
from test_cli import CATALYST_DL, overlay, prepared  # noqa: F401 - the module fixture

SCRIPTS = ROOT / "bin"


def _as_at_a_terminal() -> None:
    """SIGINT as a command typed at a terminal gets it: a test run that is itself a script's background job starts
    with SIGINT ignored, which its children keep (and carseg, as every command, leaves ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(command: list, temp: Path) -> subprocess.Popen:
    """``command`` in its own process group, with a fresh, empty system temp folder ``temp``."""
    temp.mkdir()
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, start_new_session=True,
                            preexec_fn=_as_at_a_terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen, signum: int, ready: Callable[[], bool]) -> Tuple[str, str]:
    """Send ``signum`` to the process group once ``ready()``; what it printed."""
    deadline = time.monotonic() + 120
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signum)
    return process.communicate(timeout=120)


def loader_workers(process: subprocess.Popen) -> int:
    """How many loader workers ``process`` has started: children forked from it (its command line), not a tool
    a library runs while it loads."""
    proc = Path("/proc")
    command, count = (proc / str(process.pid) / "cmdline").read_bytes(), 0
    for child in (proc / str(process.pid) / "task" / str(process.pid) / "children").read_text().split():
        try:
            count += (proc / child / "cmdline").read_bytes() == command
        except OSError:  # gone meanwhile
            pass
    return count


def hidden(folder: Path) -> list:
    return [path for path in folder.rglob(".*")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_stopped_folder_run_in_place(tmp_path, oracle_model, signum):
    """OUT = IN, stopped mid-folder: one line; the rerun does the rest (after SIGKILL too: summary.csv names the
    outputs from the start)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for number in range(40):
        Image.fromarray(red_car_photo(720, 1080)[0]).save(folder / f"car_{number:02d}.jpg", quality=90)
    command = [sys.executable, str(SCRIPTS / "car_segmentation.py"), str(folder), str(folder), str(oracle_model),
               "--quiet", "--workers", "2", "--batch-size", "1"]
    process = start(command, tmp_path / "tmp")
    out, err = stop(process, signum, lambda: len(list(folder.glob("*.png"))) >= 3)
    finished = len(list(folder.glob("*.png")))
    assert 3 <= finished < 40, "the run must be stopped mid-folder"
    if signum != signal.SIGKILL:
        assert process.returncode == 128 + signum and out == ""
        said = re.fullmatch(r"car_segmentation.py: interrupted; (\d+) of 40 photos done, rerun to continue\n", err)
        assert said, err
        with open(folder / "summary.csv", newline="") as handle:
            statuses = [row["status"] for row in csv.DictReader(handle)]
        assert statuses.count("done") == int(said[1]) <= finished and statuses.count("pending") == 40 - int(said[1])
        assert hidden(folder) == [] and os.listdir(tmp_path / "tmp") == []

    rerun = start(command, tmp_path / "tmp2")  # to the end
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert out.startswith(f"done {40 - finished}, skipped {finished} (already there), failed 0 (")
    assert len(list(folder.glob("*.png"))) == 40 and len(list(folder.glob("*.jpg"))) == 40 and hidden(folder) == []
    assert os.listdir(tmp_path / "tmp2") == []


def test_stopped_evaluation(tmp_path, oracle_model):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for number in range(40):
        photo, mask = red_car_photo(720, 1080)
        Image.fromarray(photo).save(images / f"car_{number:02d}.jpg", quality=90)
        Image.fromarray(mask).save(masks / f"car_{number:02d}_mask.png")
    process = start([sys.executable, str(SCRIPTS / "evaluate.py"), str(oracle_model), "--images", str(images),
                     "--masks", str(masks), "--csv", str(tmp_path / "scores.csv"), "--quiet", "--workers", "2",
                     "--batch-size", "1"], tmp_path / "tmp")
    out, err = stop(process, signal.SIGINT, lambda: loader_workers(process) == 2)
    assert (process.returncode, out, err) == (130, "", "evaluate.py: interrupted\n")
    assert sorted(os.listdir(tmp_path)) == ["images", "masks", "tmp"] and os.listdir(tmp_path / "tmp") == []


STOPPER = """import os, signal
from catalyst import dl
from catalyst.registry import REGISTRY


class Stop(dl.Callback):
    \"\"\"SIGTERM to the whole job (loader workers too) in epoch ``epoch``: after its first batch, or as its end begins
    (before the checkpoints and the training state are written).\"\"\"

    def __init__(self, epoch: int, at: str):
        super().__init__(order=dl.CallbackOrder.Internal)
        self.epoch, self.at = epoch, at

    def on_batch_end(self, runner):
        if self.at == "batch" and runner.epoch_step == self.epoch:
            os.killpg(os.getpgid(0), signal.SIGTERM)

    def on_epoch_end(self, runner):
        if self.at == "epoch end" and runner.epoch_step == self.epoch:
            os.killpg(os.getpgid(0), signal.SIGTERM)


REGISTRY.add(Stop=Stop)
"""


@pytest.mark.parametrize("epoch, at", [(2, "batch"), (1, "epoch end")])
def test_stopped_training_resumes(prepared, tmp_path, epoch, at):  # noqa: F811
    """Stopped with loader workers: one line saying how to go on; epoch 1's checkpoints and state are whole (a stop
    as an epoch ends waits for them) and --resume ends the run; neither run leaves a pymp-* folder."""
    package = tmp_path / "stopper"
    package.mkdir()
    (package / "__init__.py").write_text(STOPPER)
    logdir, config = tmp_path / "logs", overlay(tmp_path, prepared, num_workers=2)
    train = [*CATALYST_DL, "run", "-C", "configs/demo.yml", str(config), "--logdir", str(logdir)]
    process = start([*train, "--expdir", str(package), "--set", f"run.train.callbacks.stop={{_target_: Stop, epoch: {epoch}, at: {at}}}"],
                    tmp_path / "tmp")
    _, err = process.communicate(timeout=600)
    state = logdir / "checkpoints" / "training_state.pth"
    assert process.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert err.splitlines()[-1] == (f"catalyst-dl run: interrupted; {state} holds the last finished epoch; "
                                    "rerun with --resume to continue")
    assert torch.load(state, weights_only=False)["epoch_step"] == 1
    for checkpoint in ("model.0001.pth", "model.last.pth", "model.best.pth"):
        torch.load(logdir / "checkpoints" / checkpoint, weights_only=False)
    assert hidden(logdir) == [] and [p.name for p in (tmp_path / "tmp").glob("pymp-*")] == []

    resumed = subprocess.run([*train, "--resume"], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_metrics_csv(logdir / "csv_logger" / "valid.csv")["step"] == [1, 2]
    assert [p.name for p in (tmp_path / "tmp").glob("pymp-*")] == []
