"""catalyst-dl tune: an Optuna study over values marked in the config, results in the logdir."""
import pandas as pd
import yaml

from test_cli import catalyst_dl, overlay, prepared  # noqa: F401 - fixture


def test_tiny_study(prepared, tmp_path):  # noqa: F811
    logdir = tmp_path / "tune"
    result = catalyst_dl("tune", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared)), "configs/tune.yml",
                         "--n-trials", "2", "--check", "--logdir", str(logdir))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_csv(logdir / "tune" / "trials.csv")
    assert len(trials) == 2 and {"params_lr", "params_bce_weight", "value"} <= set(trials.columns)
    assert trials["params_lr"].nunique() == 2  # the sampler really varied the marked value
    best = yaml.safe_load((logdir / "tune" / "best.yml").read_text())
    assert best["value"] == trials["value"].max() and 0.0001 <= best["params"]["lr"] <= 0.003
    for number in (0, 1):
        assert (logdir / f"trial_{number:03d}" / "checkpoints" / "model.best.pth").is_file()
    assert "best trial" in result.stdout


def test_nothing_searchable_is_one_line(prepared, tmp_path):  # noqa: F811
    result = catalyst_dl("tune", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared)), "--n-trials", "1",
                         "--logdir", str(tmp_path / "tune"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "mark nothing searchable" in result.stderr
