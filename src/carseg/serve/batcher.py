"""Dynamic batching: concurrent requests' network inputs grouped into one forward pass."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, List, Optional, Tuple, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """Queues items from many requests and runs ``forward`` on up to ``max_batch`` of them at a time.

    A batch starts when the first item arrives and closes after ``max_wait`` seconds or at ``max_batch`` items,
    whichever comes first; items that arrive while a forward pass runs wait for the next one. ``forward`` runs in
    one worker thread, never on the event loop. ``max_batch=1``: one request at a time (batching off). An item whose
    request was cancelled (timed out) before its forward pass started is dropped, never run.
    """

    def __init__(self, forward: Callable[[List[In]], List[Out]], max_batch: int, max_wait: float):
        self.forward, self.max_batch, self.max_wait = forward, max_batch, max_wait
        self.queue: "asyncio.Queue[Tuple[In, asyncio.Future]]" = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="forward")
        self.task: Optional[asyncio.Task] = None
        self.batches = 0
        self.items = 0
        self.dropped = 0

    async def __aenter__(self) -> "Batcher[In, Out]":
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        self.executor.shutdown(wait=True)

    async def __call__(self, item: In) -> Tuple[Out, int]:
        """The output for ``item`` and the size of the batch it ran in."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((item, future))
        return await future

    async def _next(self) -> Tuple[In, asyncio.Future]:
        """The next queued item whose request still waits for it."""
        while True:
            item, future = await self.queue.get()
            if not future.done():  # done before its batch: the request was cancelled
                return item, future
            self.dropped += 1

    async def _collect(self) -> List[Tuple[In, asyncio.Future]]:
        batch = [await self._next()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                async with asyncio.timeout_at(deadline):
                    batch.append(await self._next())
            except TimeoutError:
                break
        waiting = [(item, future) for item, future in batch if not future.done()]
        self.dropped += len(batch) - len(waiting)
        return waiting

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            try:
                outputs = await loop.run_in_executor(self.executor, self.forward, [item for item, _ in batch])
            except Exception as exc:  # the requests fail, the service goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(batch)
            for (_, future), output in zip(batch, outputs):
                if not future.done():
                    future.set_result((output, len(batch)))
