"""Atomic file writes: a reader never sees half a file, and a failed write leaves nothing behind."""
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary name beside ``path`` to write to; it is renamed onto ``path`` when
    the block succeeds and deleted when it fails (a rerun also replaces one an interrupted run left).

    The temporary file is created here, fresh (``O_CREAT | O_EXCL | O_NOFOLLOW`` after removing whatever had its
    name), so a link planted at that name is removed, never followed: the file it points to stays untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a link is removed itself, not its target
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
