"""Clean exits: SIGINT (Ctrl-C) and SIGTERM stop a command the way Ctrl-C stops Python, so ``finally`` blocks remove
its temporary files and its loader workers shut down; it then ends with one line and exit code 128 + the signal."""
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, List

from carseg.errors import printable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (``signum``); ``done`` says what the command had finished by then."""

    def __init__(self, signum: int = signal.SIGINT, done: str = ""):
        super().__init__(signum, done)
        self.signum, self.done = signum, done


def interrupted(stop: KeyboardInterrupt, done: str) -> Interrupted:
    """``stop`` (a plain Ctrl-C or an :class:`Interrupted`), saying what was ``done``."""
    return Interrupted(getattr(stop, "signum", signal.SIGINT), done)


def _raise(signum: int, frame) -> None:
    raise Interrupted(signum)


def exit_cleanly(prog: str, command: Callable[[], int]) -> int:
    """``command()``'s exit code. While it runs, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread
    (loader workers are out of their reach: :mod:`carseg.data.loader`). A stop is one line on stderr,
    ``PROG: interrupted; DONE``, and 128 + the signal's number. A signal ignored when the command starts (SIGINT in a
    script's background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return command()
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS if signal.getsignal(signum) != signal.SIG_IGN}
    try:
        return command()
    except KeyboardInterrupt as stop:
        for signum in SIGNALS:  # a second Ctrl-C while saying so changes nothing
            signal.signal(signum, signal.SIG_IGN)
        done = getattr(stop, "done", "")
        print(printable(f"{prog}: interrupted" + (f"; {done}" if done else "")), file=sys.stderr)
        return 128 + getattr(stop, "signum", signal.SIGINT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM wait: one that arrives is raised again when the block ends (to the
    handler there was before), so what the block writes (an epoch's checkpoints) is written whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: List[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: arrived.append(signum)) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if arrived:
        signal.raise_signal(arrived[0])
