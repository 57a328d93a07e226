"""K-fold: prepare_dataset.py --folds K, Experiment(folds_csv, valid_fold), and ``catalyst-dl run --set``."""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from carseg.config import apply_sets
from carseg.data.pairs import car_id, pair_by_name
from carseg.errors import CarsegError
from carseg.training.experiment import Experiment
from carseg.commands.prepare_dataset import main as prepare

from conftest import ROOT

FOLDS = 3  # the tiny dataset has 6 cars x 3 views


@pytest.fixture(scope="module")
def folded(tiny_dataset, tmp_path_factory) -> Path:
    """A copy of the tiny dataset prepared with --folds 3 (read-only for the tests below)."""
    data = tmp_path_factory.mktemp("kfold") / "data"
    shutil.copytree(tiny_dataset, data)
    assert prepare(["--datapath", str(data), "--folds", str(FOLDS)]) == 0
    return data


def test_folds_grouped_by_car_and_cover_every_pair_once(tiny_dataset, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    assert prepare(["--datapath", str(data), "--folds", str(FOLDS)]) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv(data / "dataset_folds.csv")
    assert list(frame.columns) == ["image", "mask", "fold"]
    pairs = pair_by_name(data / "train", data / "train_masks").pairs
    assert sorted(zip(frame["image"], frame["mask"])) == sorted((str(i.resolve()), str(m.resolve())) for i, m in pairs)
    assert sorted(frame["fold"].unique()) == list(range(FOLDS))
    cars = frame.assign(car=frame["image"].map(lambda p: car_id(Path(p))))
    assert (cars.groupby("car")["fold"].nunique() == 1).all()          # all views of a car share a fold
    assert frame["fold"].value_counts().tolist() == [6, 6, 6]          # GroupKFold balances equal-sized cars
    for fold in range(FOLDS):
        assert f"fold {fold}: 6 images of 2 cars" in out
    # the usual split is still written
    assert len(pd.read_csv(data / "dataset_train.csv")) + len(pd.read_csv(data / "dataset_valid.csv")) == 18
    assert not list(data.glob(".*.tmp"))


def test_more_folds_than_cars_is_one_line_and_writes_nothing(dataset_copy, capsys):
    assert prepare(["--datapath", str(dataset_copy), "--folds", "7"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "6 car ids for 7 folds" in err and "--folds 6" in err, err
    assert not list(dataset_copy.glob("*.csv"))
    with pytest.raises(SystemExit):
        prepare(["--datapath", str(dataset_copy), "--folds", "1"])
    assert "--folds must be at least 2" in capsys.readouterr().err


def test_experiment_splits_by_valid_fold(folded):
    folds_csv = folded / "dataset_folds.csv"
    frame = pd.read_csv(folds_csv)
    # folds_csv takes precedence over train_csv/valid_csv (so --set works on any config)
    experiment = Experiment(train_csv="/nowhere/train.csv", valid_csv="/nowhere/valid.csv", folds_csv=str(folds_csv),
                            valid_fold=1, image_size=[64, 96], batch_size=4, num_workers=0)
    frames = experiment.get_frames()
    assert set(frames["valid"]["image"]) == set(frame.loc[frame["fold"] == 1, "image"])
    assert set(frames["train"]["image"]) == set(frame.loc[frame["fold"] != 1, "image"])
    loaders = experiment.get_loaders()
    assert list(loaders) == ["train", "valid"]
    assert len(loaders["train"].dataset) == 12 and len(loaders["valid"].dataset) == 6
    assert len(loaders["train"]) == 3 and len(loaders["valid"]) == 2    # drop_last on train only
    batch = next(iter(loaders["valid"]))
    assert batch["features"].shape == (4, 3, 64, 96) and batch["targets"].shape == (4, 1, 64, 96)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "needs train_csv and valid_csv, or folds_csv and valid_fold"),
    ({"train_csv": "a.csv"}, "needs train_csv and valid_csv"),
    ({"folds_csv": "f.csv"}, "needs valid_fold"),
    ({"folds_csv": "f.csv", "valid_fold": "1"}, "'1' is not a fold number"),
    ({"folds_csv": "f.csv", "valid_fold": True}, "True is not a fold number"),
    ({"train_csv": "a.csv", "valid_csv": "b.csv", "valid_fold": 0}, "folds_csv is not"),
])
def test_bad_experiment_arguments(kwargs, message):
    with pytest.raises(CarsegError, match=message):
        Experiment(**kwargs)


@pytest.mark.parametrize("valid_fold", [3, -1])
def test_valid_fold_out_of_range(folded, valid_fold):
    experiment = Experiment(folds_csv=str(folded / "dataset_folds.csv"), valid_fold=valid_fold, num_workers=0)
    with pytest.raises(CarsegError, match=rf"dataset_folds.csv: valid_fold={valid_fold} is not a fold in it; use one of 0, 1, 2"):
        experiment.get_loaders()


def test_folds_csv_without_fold_column_or_files(folded, tmp_path):
    with pytest.raises(CarsegError, match="dataset_train.csv: needs an integer fold column"):
        Experiment(folds_csv=str(folded / "dataset_train.csv"), valid_fold=0).get_loaders()
    frame = pd.read_csv(folded / "dataset_folds.csv")
    frame.loc[0, "mask"] = "/gone/m.gif"
    frame.to_csv(tmp_path / "folds.csv", index=False)
    with pytest.raises(CarsegError, match=r"folds.csv: points to missing files \(/gone/m.gif\)"):
        Experiment(folds_csv=str(tmp_path / "folds.csv"), valid_fold=0).get_loaders()


def test_apply_sets():
    config = {"experiment": {"image_size": [64, 96], "batch_size": 4, "train_csv": "a.csv"},
              "run": {"train": {"_call_": "train", "num_epochs": 10, "callbacks": {"x": {"_target_": "X", "p": 0.1}}}},
              "lists": [{"a": 1}, {"a": 2}]}
    apply_sets(config, [
        "experiment.batch_size=16",                  # int
        "experiment.valid_fold=2",                   # a new key in an existing mapping
        "experiment.train_csv=null",                 # null
        "experiment.image_size=[128, 192]",          # a list
        "experiment.folds_csv=./data/dataset_folds.csv",
        "run.train.num_epochs=5",                    # a named call
        "run.train.callbacks.x.p=0.5",               # one callback by name
        "run.train.verbose=true",                    # bool
        "run.train.note=a=b",                        # only the first '=' splits
        "lists.-1.a=3",                              # negative list index
    ])
    assert config["experiment"] == {"image_size": [128, 192], "batch_size": 16, "train_csv": None, "valid_fold": 2,
                                    "folds_csv": "./data/dataset_folds.csv"}
    train = config["run"]["train"]
    assert train["num_epochs"] == 5 and train["callbacks"]["x"]["p"] == 0.5 and config["lists"] == [{"a": 1}, {"a": 3}]
    assert train["verbose"] is True and train["note"] == "a=b"
    assert apply_sets(config, []) is config


@pytest.mark.parametrize("item, message", [
    ("experiment", "expected KEY=VALUE"),
    ("experiment..batch_size=1", "expected KEY=VALUE"),
    ("=1", "expected KEY=VALUE"),
    ("experimnt.valid_fold=1", "--set experimnt.valid_fold: the config has no key 'experimnt' (did you mean 'experiment'?)"),
    ("experiment.augs.p=1", "--set experiment.augs.p: experiment has no key 'augs'"),
    ("lists.1.a=5", "--set lists.1.a: lists is a list of 1; '1' is not an index in it (valid: 0..0)"),
    ("lists.first.a=5", "lists is a list of 1; 'first' is not an index"),
    ("run.trian.num_epochs=5", "--set run.trian.num_epochs: run has no key 'trian' (did you mean 'train'?)"),
    ("experiment.batch_size.x=5", "experiment.batch_size is 4, not a mapping or a list"),
    ("experiment.image_size=[1, 2", "--set experiment.image_size: value '[1, 2' is not valid YAML"),
])
def test_apply_sets_bad_paths(item, message):
    config = {"experiment": {"batch_size": 4}, "run": {"train": {"_call_": "train"}}, "lists": [{"a": 1}]}
    with pytest.raises(CarsegError) as error:
        apply_sets(config, [item])
    assert message in str(error.value)


def test_cli_set_bad_key_is_one_line(capsys, tmp_path):
    from carseg.commands.catalyst_dl import main

    assert main(["run", "-C", "configs/demo.yml", "--set", "experiment.valid_fold=0", "run.train.loaders.nope.x=1",
                 "--logdir", str(tmp_path / "logs")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["catalyst-dl run: error: --set run.train.loaders.nope.x: run.train.loaders has no key 'nope'"]
    assert not (tmp_path / "logs").exists()


def test_cli_run_on_a_fold(folded, tmp_path):
    """The documented loop's body: the demo config with its data and epochs replaced on the command line."""
    logdir = tmp_path / "logs"
    command = [sys.executable, "-c", "from carseg.commands.catalyst_dl import main; raise SystemExit(main())", "run",
               "-C", "configs/demo.yml",
               "--set", f"experiment.folds_csv={folded / 'dataset_folds.csv'}", "experiment.valid_fold=2",
               "--set", "experiment.image_size=[64, 96]", "experiment.batch_size=4", "experiment.num_workers=0",
               "model.base_channels=4", "model.depth=3", "run.train.num_epochs=1",
               "--logdir", str(logdir), "--check"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = yaml.safe_load((logdir / "configs" / "_config.yml").read_text())
    assert saved["experiment"]["valid_fold"] == 2 and saved["experiment"]["image_size"] == [64, 96]
    assert saved["experiment"]["folds_csv"] == str(folded / "dataset_folds.csv")
    assert saved["run"]["train"]["num_epochs"] == 1 == saved["scheduler"]["T_max"] and saved["model"]["depth"] == 3
    assert (logdir / "checkpoints" / "model.best.pth").is_file()
