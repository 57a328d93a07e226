"""The one exception type for mistakes a user can fix (bad path, bad image, bad config)."""


class CarsegError(Exception):
    """A user-facing error: its message is one line that names the file or key and what to do."""


def one_line(exc: BaseException) -> str:
    """The message as one line; a CarsegError re-raised from a DataLoader worker carries a traceback."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[-1].removeprefix(f"{CarsegError.__module__}.{CarsegError.__name__}: ")
