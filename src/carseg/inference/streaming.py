"""The one streaming loop behind background removal and evaluation: files decoded in loader workers, batched
forward passes in this process, full-resolution work (upsampling, composing, encoding, scoring) in worker processes
or threads.
Memory is bounded by the batch and queue sizes, never by the number of files; a bad file is one error, not a crash."""
import ctypes
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from copy import copy
from functools import partial
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from carseg.cores import available_cores
from carseg.data.loader import Loader, process_pool
from carseg.errors import failure
from carseg.inference.device_refinement import Refined
from carseg.inference.predictor import Predictor, Prepared
from carseg.inference.shared_slots import InSlot, Slots, slots_for
from carseg.progress import progress_bar

Job = TypeVar("Job")
# read(job) -> (network input, extras for finish), in a loader worker; finish(job, extras, probability map) -> result,
# in a finishing process or thread. Either may raise: the job then yields an error line.
Read = Callable[[Any], Tuple[Prepared, Any]]
Finish = Callable[[Any, Any, Any], Any]
# forward(network inputs) -> a probability map (or Predictor.refined's) each
Forward = Callable[[List[Prepared]], List[Any]]


class _Reads(Dataset):
    """``read`` of each job in a loader worker; an exception becomes an error record, not a crash."""

    def __init__(self, jobs: Sequence, read: Read, source: Callable[[Any], Any]):
        self.jobs, self.read, self.source = jobs, read, source

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> Dict:
        try:
            prepared, extras = self.read(self.jobs[index])
            return {"index": index, "prepared": prepared, "extras": extras}
        except Exception as exc:  # whatever a decoder raises for one odd file, the batch goes on
            return {"index": index, "error": failure(self.source(self.jobs[index]), exc)}


TRIM_EVERY = 64  # photos between two returns of freed memory to the OS (see Heap)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


class Heap:
    """glibc's heap tuned for a stream of same-sized full-resolution arrays (elsewhere: left as it is).

    By default glibc maps every array over 128 KB-32 MB afresh and unmaps it when freed, so each photo's ~10 MB
    float maps fault in zeroed pages again: ~40 ms of kernel time per 1918x1280 photo. Kept in the heap instead
    (``mallopt``), they are reused; the heap is handed back to the OS every ``TRIM_EVERY`` photos (``malloc_trim``),
    since long-lived small objects would otherwise pin freed blocks and the process would grow photo after photo
    (~+300 MB over 400 photos). CLI on 2 cores, 60 Carvana photos: 10.9 -> 12.5 photos/s, kernel time 2.7 -> 1.0 s.
    """

    def __init__(self):
        try:
            libc = ctypes.CDLL(None)
            self.trim, mallopt = libc.malloc_trim, libc.mallopt
        except (AttributeError, OSError, TypeError):
            self.trim = None
            return
        mallopt(M_MMAP_THRESHOLD, 256 * 2**20)  # arrays up to 256 MB come from the heap, where they are reused
        mallopt(M_TRIM_THRESHOLD, 2**30)        # freeing does not shrink the heap; released() does, now and then
        self.photos = 0

    def released(self, photos: int) -> None:
        """Count ``photos`` forwarded; every ``TRIM_EVERY`` of them, give the heap's free memory back to the OS."""
        if self.trim is None:
            return
        self.photos += photos
        if self.photos >= TRIM_EVERY:
            self.trim(0)
            self.photos = 0


Item = Tuple[Any, Any, Any]  # a job, its extras and its probability map (or Refined, or InSlot), to finish
Outcome = Tuple[Any, Optional[str]]  # finish's result, or None and the job's one-line error


def _finish_all(finish: Finish, source: Callable[[Any], Any], heap: Heap, items: List[Item],
                slots: Optional[Slots] = None) -> List[Outcome]:
    """``finish`` of each item (its maps read from ``slots`` where they wait there); a failure is its one-line
    error, so the other items' results stand."""
    outcomes: List[Outcome] = []
    for job, extras, prob in items:
        try:
            outcomes.append((finish(job, extras, slots.take(prob) if isinstance(prob, InSlot) else prob), None))
        except Exception as exc:  # one bad file never stops the folder
            outcomes.append((None, failure(source(job), exc)))
        heap.released(1)
    return outcomes


_held: Optional[Tuple[Finish, Callable[[Any], Any], Heap, Optional[Slots]]] = None  # a worker process's (_hold)


def _hold(finish: Finish, source: Callable[[Any], Any], slots: Optional[Slots]) -> None:
    """A finishing process's set-up: ``finish`` kept for its tasks, OpenCV on one thread (the process is one core's
    worth of work), the heap tuned for full-resolution arrays, the shared slots (inherited) where maps wait."""
    global _held
    cv2.setNumThreads(1)
    _held = finish, source, Heap(), slots


def _finish_held(items: List[Item]) -> List[Outcome]:
    finish, source, heap, slots = _held
    return _finish_all(finish, source, heap, items, slots)


LOADED_TOGETHER = 8  # photos a loader worker hands over at once, whatever the batch size: the hand-over's own cost
                     # (a queue, a profiler hook) is paid once for them, not per photo of a batch of 1
FINISHED_TOGETHER = 2  # photos a finishing task takes, its hand-over paid once for them; with 4, a core idled while
                       # the forward pass filled a task and at the run's end (2 cores: 1.70x one core; with 2: 1.91x)
FORWARD_SHARE = 4  # beside finishing processes, the forward pass gets a quarter of the cores as torch threads: on 2
                   # cores 1 thread gives 13.9 photos/s, 2 threads (torch's default) 13.1, stalling on the workers
DIED = ("a worker process died while finishing this photo (out of memory, or killed); the run goes on, rerun to "
        "retry it")


class _Finishers:
    """``finish`` in ``processes`` worker processes (``carseg.data.loader.process_pool``), or with 0 in threads of
    this process, one per core. A pool whose process died is replaced; the photos it held fail with ``DIED``.
    ``slots``: how many photos' refined maps may wait in shared memory for the processes (0: none, all pickled)."""

    def __init__(self, finish: Finish, source: Callable[[Any], Any], processes: int, slots: int = 0):
        self.finish, self.source, self.processes = finish, source, processes
        self.workers = processes or available_cores()
        self.slots = slots_for(slots) if processes and slots else None  # before the fork: the processes inherit it
        if processes:
            self.pool = process_pool(processes, _hold, finish, source, self.slots)
        else:
            # one thread per core; OpenCV's own thread pool would only add contention (~10% slower on 2 cores)
            self.pool = ThreadPoolExecutor(max_workers=self.workers)
            self.heap, self.cv2_threads = Heap(), cv2.getNumThreads()
            cv2.setNumThreads(1)

    def submit(self, items: List[Item]) -> Future:
        """A task finishing ``items``: its future gives their outcomes."""
        if not self.processes:
            return self.pool.submit(_finish_all, self.finish, self.source, self.heap, items)
        if self.slots is not None:
            items = [(job, extras, self.slots.put(prob) if isinstance(prob, Refined) else prob)
                     for job, extras, prob in items]
        try:
            future = self.pool.submit(_finish_held, items)
        except BrokenProcessPool:
            self.pool.shutdown(wait=False)
            self.pool = process_pool(self.processes, _hold, self.finish, self.source, self.slots)
            future = self.pool.submit(_finish_held, items)
        if self.slots is not None:  # the slots are free again once the task has ended, however it ended
            future.add_done_callback(lambda _: self.slots.release(prob for _, _, prob in items))
        return future

    def close(self, cancel: bool) -> None:
        """Wait for the photos being finished; with ``cancel``, start no other."""
        self.pool.shutdown(cancel_futures=cancel)
        if not self.processes:
            cv2.setNumThreads(self.cv2_threads)


def stream(jobs: Sequence[Job], predictor: Predictor, read: Read, finish: Finish, batch_size: int = 8,
           workers: int = 2, progress: bool = True, source: Callable[[Job], Any] = lambda job: job,
           finishers: int = 0, done: Callable[[Job, Any], None] = lambda job, result: None,
           forward: Optional[Forward] = None, guide: Optional[Callable[[Any], np.ndarray]] = None,
           ) -> Iterator[Tuple[Job, Any, Optional[str]]]:
    """Yield ``(job, finish's result, None)`` or ``(job, None, one-line error)`` for every job, as each is finished.
    ``workers``: loader processes that ``read``. ``finishers``: processes that ``finish`` (0: threads of this
    process), where the full-resolution work no longer contends for this process's interpreter with the forward
    passes. ``done(job, result)``: called as each job is finished, also when the caller stops the stream early (the
    photos being finished then finish). ``forward``: what the batches go through (default: ``predictor.forward``).
    ``guide(extras)``: for the mask work where the model runs (``Predictor.refined``), the photo's brightness, set
    as each network input's ``guide``; decoded in ``workers`` threads of this process as the photos arrive (OpenCV
    decodes without holding the interpreter; handed over from a loader process, the 2.4 MB of a 1918x1280 photo
    held it ~1 ms); the refined maps then go to the finishing processes through shared memory."""
    forward = forward or predictor.forward
    pending: Deque[Tuple[Job, Future, int]] = deque()  # a photo, its task and its place in the task

    def settle(limit: int) -> Iterator[Tuple[Job, Any, Optional[str]]]:
        while len(pending) > limit:
            job, future, index = pending.popleft()
            try:
                yield (job, *future.result()[index])
            except BrokenProcessPool:
                yield job, None, f"{source(job)}: {DIED}"

    def finished(jobs: List[Job], future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            for job, (result, error) in zip(jobs, future.result()):
                if error is None:
                    done(job, result)

    # photos in flight at most: memory does not grow with the number of jobs
    bound = 2 * max(batch_size, LOADED_TOGETHER, finishers or available_cores())
    # before the loader: its processes fork from this one alone
    pool = _Finishers(finish, source, finishers, slots=bound + batch_size + LOADED_TOGETHER if guide else 0)
    guides = ThreadPoolExecutor(max(1, workers), thread_name_prefix="guide") if guide else None
    threads = torch.get_num_threads()
    if finishers and predictor.device == "cpu":  # the finishers keep every core busy: more threads only stall
        torch.set_num_threads(max(1, available_cores() // FORWARD_SHARE))
    # loaders hand over LOADED_TOGETHER photos at a time and batches gather across hand-overs: the photos decoded
    # ahead stay few whatever the batch size (32 on a GPU)
    loader = Loader(_Reads(jobs, read, source), batch_size=LOADED_TOGETHER, num_workers=workers, collate_fn=list,
                    pin_memory=False)
    items: List[Item] = []  # forwarded, not yet sent to the finishers

    def forwarded(batch: List[Dict], flush: bool) -> None:
        """``batch`` through ``forward``, and to the finishers as soon as a task fills (``flush``: the rest too)."""
        nonlocal items
        if batch:  # (its photos may all have failed)
            probs = forward([item["prepared"] for item in batch])
            items += [(jobs[item["index"]], item["extras"], prob) for item, prob in zip(batch, probs)]
        while items and (len(items) >= FINISHED_TOGETHER or flush):
            task, items = items[:FINISHED_TOGETHER], items[FINISHED_TOGETHER:]
            future = pool.submit(task)
            future.add_done_callback(partial(finished, [job for job, _, _ in task]))
            pending.extend((job, future, index) for index, (job, _, _) in enumerate(task))

    def guided(batch: List[Dict]) -> Iterator[Tuple[Job, Any, Optional[str]]]:
        """Each item's guide set on its network input (``guide``); an item whose guide failed yields its error line and
        leaves the batch."""
        for item in list(batch):
            try:
                item["prepared"] = copy(item["prepared"])  # (a shallow copy: dataclasses.replace costs 10x more)
                item["prepared"].guide = item.pop("guide").result()
            except Exception as exc:  # one odd file, one line
                batch.remove(item)
                yield jobs[item["index"]], None, failure(source(jobs[item["index"]]), exc)

    waiting: List[Dict] = []  # loaded, waiting for a full batch
    try:
        with progress_bar(progress, total=len(jobs), unit="img") as bar:
            for loaded in loader:
                for item in loaded:
                    if "error" in item:
                        yield jobs[item["index"]], None, item["error"]
                    else:
                        if guides is not None:
                            item["guide"] = guides.submit(guide, item["extras"])
                        waiting.append(item)
                while len(waiting) >= batch_size:
                    batch, waiting = waiting[:batch_size], waiting[batch_size:]
                    yield from guided(batch) if guides is not None else ()
                    forwarded(batch, flush=len(waiting) < batch_size)
                yield from settle(bound)
                bar.update(len(loaded))
            if waiting:
                yield from guided(waiting) if guides is not None else ()
                forwarded(waiting, flush=True)
            yield from settle(limit=0)
    except BaseException:  # interrupted, or the caller stopped early: the photos being written finish, no more
        pool.close(cancel=True)
        raise
    finally:
        torch.set_num_threads(threads)
        if guides is not None:
            guides.shutdown(cancel_futures=True)
    pool.close(cancel=False)
