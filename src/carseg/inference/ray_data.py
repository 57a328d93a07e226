"""``car_segmentation.py IN OUT --ray [ADDRESS]``: a folder's photos cut out on Ray Data, from one machine to a cluster.

The same jobs, per-photo work (:class:`~carseg.inference.background_removal.PhotoWork`) and summary as the local run;
only the scheduling differs: a Ray Data pipeline streams the jobs through a pool of actors, each holding one
Predictor, with Ray's backpressure and retries. IN and OUT are folders every node sees (a shared file system) or
URIs that pyarrow opens (s3://, gs://: carseg.data.storage), read and written by the actors themselves.
No ADDRESS: a local Ray is started for the run and stopped after it; ``auto`` or ``ray://HOST:PORT``: a cluster.
"""
import logging
import os
import pickle
import warnings
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from carseg.errors import CarsegError, failure
from carseg.inference.background_removal import Job, PhotoRow, PhotoWork, Results
from carseg.inference.streaming import Heap

LOCAL = "local"  # --ray without ADDRESS
RETRIES = 1      # a batch whose actor died (a crash, the OOM killer) runs once more on a fresh actor, then is reported
BATCH = 8        # photos per Ray task by default: amortises Ray's per-task cost (200 photos, 2 cores: 1 per task ran at
                 # 0.61x the local run's photos/s, 8 at 0.77x; benchmarks/README.md)


class CutOutActor:
    """One Ray actor: loads the Predictor once, then cuts out batches of jobs (each row a pickled Job: its paths, or
    its StoredPaths with their filesystems' options).
    Every photo comes back as a row of ``OUT/summary.csv``: a photo that fails is a row with its error line.

    A run's subclass carries the work's settings as class attributes (:func:`actor_class`): Ray ships them with the
    class, and a restarted actor has them without any object of the run's still alive."""

    work: Dict[str, Any] = {}  # PhotoWork.load's arguments
    threads = 1

    def __init__(self):
        import torch

        torch.set_num_threads(self.threads)
        self.photos = PhotoWork.load(**self.work)
        self.heap = Heap()  # as in the local stream: full-resolution arrays reused, not faulted in afresh

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, List[str]]:
        jobs = [pickle.loads(job) for job in batch["job"]]
        rows = [asdict(row) for row in self.photos.run(jobs)]
        self.heap.released(len(jobs))
        return {name.name: [row[name.name] for row in rows] for name in fields(PhotoRow)}


def actor_class(work: Dict[str, Any], threads: int) -> type:
    """:class:`CutOutActor` for one run's ``work`` and torch ``threads``."""
    return type("CutOutActor", (CutOutActor,), {"work": work, "threads": threads})


def _quiet_ray() -> None:
    """Ray's own log lines stay in its session logs, off the terminal (its C++ core's: all but one line at start)."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # else every actor pool warns that restarts may fail
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray of this user's own processes: no token warning
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def connect(address: str, num_cpus: Optional[int] = None) -> Iterator[None]:
    """Ray for a run: a local one started (``address`` ``local``) or a cluster joined, and left again after the run;
    a Ray this process already runs is used as it is."""
    import ray

    _quiet_ray()
    if ray.is_initialized():
        yield
        return
    try:
        if address == LOCAL:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise CarsegError(f"--ray {address}: cannot connect ({str(exc).splitlines()[0]}); start a cluster with "
                          "'ray start --head' or give its address (auto, ray://HOST:10001)") from None
    _quiet_ray()
    try:
        yield
    finally:
        ray.shutdown()


def actor_plan(actors: Optional[int], cpus: Optional[float], gpus: Optional[float]) -> Tuple[int, float, float]:
    """Actors and each one's CPUs and GPUs: one actor per GPU when the cluster has GPUs, else one per
    ``cpus`` (default 1) of the cluster's CPUs."""
    import ray

    resources = ray.cluster_resources()
    cluster_gpus, cluster_cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    gpus = (1.0 if cluster_gpus else 0.0) if gpus is None else gpus
    cpus = 1.0 if cpus is None else cpus
    if actors is None:
        actors = cluster_gpus if gpus and cluster_gpus else max(1, int(cluster_cpus // cpus))
    if actors < 1 or cpus <= 0 or gpus < 0:
        raise CarsegError(f"--ray-actors {actors}, --ray-cpus {cpus}, --ray-gpus {gpus}: need at least one actor and "
                          "a positive CPU share")
    return actors, cpus, gpus


def run_on_ray(jobs: List[Job], work: PhotoWork, predictor: Dict[str, Any], batch_size: int, progress: bool,
               actors: Optional[int] = None, cpus: Optional[float] = None, gpus: Optional[float] = None) -> Results:
    """Yield ``(job, its row, None)`` or ``(job, None, one-line error)`` for every job, as Ray finishes them: ``work``
    done in actors that each build their own Predictor from ``predictor`` (its keyword arguments; the model itself is
    never sent)."""
    import ray
    import ray.data

    if not jobs:
        return
    _quiet_ray()  # ray.data sets its loggers up when first imported
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.enable_operator_progress_bars = False
    context.max_errored_blocks = len(jobs)  # a batch that failed twice is reported below, the others go on
    actors, cpus, gpus = actor_plan(actors, cpus, gpus)
    items = [{"job": pickle.dumps(job)} for job in jobs]
    with warnings.catch_warnings():  # Ray 2.60 has no named parameter for restarts and retries yet
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items) // batch_size)).map_batches(
            actor_class({"predictor": predictor, **work.settings()}, max(1, int(cpus))), batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus, num_gpus=gpus, max_restarts=RETRIES, max_task_retries=RETRIES)
    by_source = {str(job.source): job for job in jobs}
    for row in dataset.iter_rows():
        job = by_source.pop(row["photo"])
        result = PhotoRow(**{name.name: row[name.name] for name in fields(PhotoRow)})
        yield (job, None, result.error) if result.status == "failed" else (job, result, None)
    for job in by_source.values():  # their batch's actor died twice: Ray dropped the batch
        yield job, None, failure(job.source, RuntimeError(f"its Ray worker died twice on this batch of {batch_size}; "
                                                          "rerun with --batch-size 1 to find the photo"))
