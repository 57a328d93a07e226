"""``catalyst-dl tune``: Optuna search over the config values marked ``_var_: trial.suggest_*``.

Catalyst's own ``catalyst-tune`` shows the pattern (a ``trial`` variable in hydra-slayer's
vars); this adds a logdir per trial, the best checkpoint's metric as the score, and the results
(all trials as CSV, the best parameters as YAML) in the logdir.
"""
import copy
import json
from pathlib import Path
from typing import Any, Dict, Optional

import yaml
from catalyst.contrib.scripts.run import run_from_params

from carseg.atomic import atomic_path, write_bytes_atomic
from carseg.compat.hydra import build_with_vars
from carseg.config import apply_overrides, catalyst_params, save_config, train_calls
from carseg.data.loader import release_workers
from carseg.errors import CarsegError


def _best_metric(logdir: Path) -> float:
    storage = json.loads((logdir / "checkpoints" / "model.storage.json").read_text())
    return float(storage["storage"][0]["metric"])


def tune(config: Dict[str, Any], logdir: Path, n_trials: int, timeout: Optional[float] = None,
         seed: int = 42, sources=()) -> Dict[str, Any]:
    """Run ``n_trials`` trainings, each in ``logdir/trial_NNN``; return the best trial's parameters."""
    import optuna

    if "trial" not in json.dumps(config):
        raise CarsegError("the configs mark nothing searchable: add values like "
                          "'lr: {_var_: trial.suggest_float, name: lr, low: 0.0001, high: 0.01, log: true}' (see configs/tune.yml)")
    config = copy.deepcopy(config)
    study_params = config.pop("study", {}) or {}
    calls = train_calls(config)
    if len(calls) != 1:
        raise CarsegError("catalyst-dl tune needs exactly one '_call_: train' entry in run:")
    minimize = bool(calls[0].get("minimize_valid_metric", False))
    save_config(config, logdir, sources)

    def objective(trial: "optuna.Trial") -> float:
        trial_dir = logdir / f"trial_{trial.number:03d}"
        trial_config = apply_overrides(copy.deepcopy(config), logdir=str(trial_dir))
        params = build_with_vars(catalyst_params(trial_config), trial=trial)
        try:
            run_from_params(params)
        finally:  # the trial's loader workers end with it
            release_workers(params["runner"])
        return _best_metric(trial_dir)

    study = optuna.create_study(
        direction=study_params.get("direction", "minimize" if minimize else "maximize"),
        sampler=optuna.samplers.TPESampler(seed=study_params.get("seed", seed)),
        study_name=study_params.get("study_name", "carseg"),
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    tune_dir = logdir / "tune"
    tune_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(tune_dir / "trials.csv") as tmp:
        study.trials_dataframe().to_csv(tmp, index=False)
    best = {"trial": study.best_trial.number, "value": study.best_value, "params": study.best_params,
            "logdir": str(logdir / f"trial_{study.best_trial.number:03d}")}
    write_bytes_atomic(tune_dir / "best.yml", yaml.safe_dump(best, sort_keys=False).encode("utf-8"))
    return best
