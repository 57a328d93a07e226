"""The one exception type for mistakes a user can fix (bad path, bad image, bad config)."""
from pathlib import Path


class CarsegError(Exception):
    """A user-facing error: its message is one line that names the file or key and what to do."""


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name) and undecodable bytes (a file name that is not
    UTF-8) written as escapes, so one log line stays one line and can be printed."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


def one_line(exc: BaseException) -> str:
    """The message as one line; a CarsegError re-raised from a DataLoader worker carries a traceback."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[-1].removeprefix(f"{CarsegError.__module__}.{CarsegError.__name__}: ")


def failure(source: Path, exc: BaseException) -> str:
    """One line for a file that failed: carseg's own message (it names the file), or the library's, after the path."""
    if isinstance(exc, CarsegError):
        return one_line(exc)
    if isinstance(exc, OSError):  # e.g. OUT is not writable: the message says so
        return f"{source}: {exc}"
    first = (str(exc).strip().splitlines() or [""])[-1][:300]
    return f"{source}: {type(exc).__name__}: {first}; replace or remove the file"
