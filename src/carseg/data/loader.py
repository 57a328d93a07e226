"""A DataLoader, and a process pool, whose worker processes stay out of the job's signals and leave no temporary
folder.

Ctrl-C at a terminal and a scheduler's SIGTERM go to the whole process group. Only the main process should act on
them (:mod:`carseg.interrupts`) and shut its workers down: a worker that got them died (torch's SIGTERM handler),
which the main process reported as a dead worker with a traceback, or printed a traceback of its own."""
import ctypes
import multiprocessing
import multiprocessing.context
import multiprocessing.util
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import Any, Callable, Iterator, Optional, Type

import cv2
from torch.utils.data import DataLoader

from carseg.interrupts import SIGNALS, deferred


@contextmanager
def _blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread, so a process it forks starts with them blocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _WorkerProcess(multiprocessing.context.ForkProcess):
    """A forked loader worker, started with SIGINT and SIGTERM blocked (until :func:`_isolated`). Multiprocessing's
    ``pymp-*`` temporary folder is made before the fork, so the workers share this process's, which it removes when
    it exits: made in a worker (when it first shares a tensor), it stayed behind whenever the worker was terminated
    (persistent workers at every exit, all workers on SIGTERM)."""

    def __init__(self, *args: Any, **kwargs: Any):
        multiprocessing.util.get_temp_dir()  # before the process copies this one's settings
        super().__init__(*args, **kwargs)

    def start(self) -> None:
        with _blocked():
            super().start()


class _WorkerContext(multiprocessing.context.ForkContext):
    Process = _WorkerProcess


def _worker_context() -> Optional[_WorkerContext]:
    """Where workers are forked (the default on Linux), the context that starts them as :class:`_WorkerProcess`; else
    None: the start method's own."""
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    return _WorkerContext() if method == "fork" else None


def _hangup_is_no_error(kind: Type[BaseException], value: BaseException, trace: Optional[TracebackType]) -> None:
    """A worker's ``sys.excepthook``: the main process hanging up on it (it is stopping) is not printed. Its thread
    that hands tensors over printed a ConnectionResetError when the main process stopped halfway through taking one."""
    if not isinstance(value, ConnectionError):
        sys.__excepthook__(kind, value, trace)


PR_SET_PDEATHSIG = 1  # Linux prctl: the signal a process gets when the thread that started it ends


def _isolated(worker_id: int, init: Optional[Callable[[int], None]]) -> None:
    """A worker's first step: a process group of its own, the signals sent to the old one while it started dropped
    (not on macOS, which has no ``sigtimedwait``), then ``init``. A worker dies with the main process (Linux): killed
    with SIGKILL, that can stop nothing, and a worker waiting to hand over a large batch through a full pipe waited
    forever (torch's watchdog ends its loop, not the pipe's feeder thread), holding the job's output pipes open."""
    sys.excepthook = _hangup_is_no_error
    os.setpgid(0, 0)
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):  # not Linux
        pass
    if hasattr(signal, "sigtimedwait"):
        while signal.sigtimedwait(SIGNALS, 0) is not None:
            pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    if init is not None:
        init(worker_id)


@contextmanager
def _forkable_opencv() -> Iterator[None]:
    """OpenCV's thread pool at one thread while this process forks workers. A fork copies the pool's state but not
    its threads: a worker forked after the pool had run hung at its first ``cv2.setNumThreads`` (training's worker
    init, a finishing process's set-up), waiting for threads it does not have."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _pool_worker(init: Callable[..., None], *args: Any) -> None:
    """A pool worker's first step: isolated as a loader worker is, then ``init(*args)``."""
    _isolated(0, None)
    init(*args)


def process_pool(processes: int, init: Callable[..., None], *args: Any) -> ProcessPoolExecutor:
    """``processes`` worker processes, each set up by ``init(*args)`` (forked where that is the default: ``args`` are
    inherited, not pickled), started now, while this process has no other threads to fork with. Ctrl-C and SIGTERM
    reach only this process, which shuts the pool down (``shutdown``): the tasks being run finish, no other starts."""
    pool = ProcessPoolExecutor(processes, _worker_context(), initializer=_pool_worker, initargs=(init, *args))
    with deferred(), _forkable_opencv():
        pool.submit(int).result()  # forks every worker (ProcessPoolExecutor forks them all at the first task)
    return pool


class Loader(DataLoader):
    """``torch.utils.data.DataLoader`` (same arguments) whose workers run in their own process group, started by
    :class:`_WorkerProcess` where workers are forked (the default on Linux). A signal that arrives while this loader
    starts its workers waits until it has (:func:`carseg.interrupts.deferred`): raised in a fork hook it was lost,
    raised halfway through torch's iterator it made a traceback as the iterator was collected."""

    def __init__(self, *args: Any, worker_init_fn: Optional[Callable[[int], None]] = None, **kwargs: Any):
        context = _worker_context()
        if kwargs.get("num_workers") and context is not None:
            kwargs.setdefault("multiprocessing_context", context)
        super().__init__(*args, worker_init_fn=partial(_isolated, init=worker_init_fn), **kwargs)

    def __iter__(self):
        with deferred(), _forkable_opencv():
            return super().__iter__()


def release_workers(runner: Any) -> None:
    """Stop the persistent workers of the loaders a Catalyst ``runner`` trained with (as its engine prepared them;
    torch's private iterator shutdown) now, not at the interpreter's exit: there, persistent workers with pinned
    memory (``pin_memory`` on CUDA) can leave the process hanging after the run has ended (pytorch/pytorch#81794: the
    pin-memory thread and the workers wait on each other), and tuning trials would pile them up meanwhile."""
    for loader in (getattr(runner, "loaders", None) or {}).values():
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()
            loader._iterator = None
