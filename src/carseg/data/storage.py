"""Where a folder run reads photos and writes cut-outs: a folder (a ``pathlib.Path``, as always) or a URI that pyarrow
opens (``s3://``, ``gs://``, ``file://``...), a :class:`StoredPath`. A ``StoredPath`` answers the part of ``Path``'s
interface a folder run uses (``/``, ``name``, ``parent``, ``is_file``, ``rglob``, ``read_bytes``...), so the run does
not ask which one it has; what ``Path`` has no method for (an atomic write, the bytes a decoder reads, a photo fetched
once, files listed at once) are this module's functions, for both.

Credentials come from the environment as pyarrow reads them (S3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance role; GCS: ``GOOGLE_APPLICATION_CREDENTIALS``, the machine's account). Names shown in
lines and in ``summary.csv`` never carry a URI's ``user:password@`` or query (where pyarrow also takes keys).
"""
import errno
import io
import os
import pickle
import posixpath
import tempfile
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Iterable, Iterator, List, Optional, Set, Union
from urllib.parse import urlparse, urlunparse

from carseg.atomic import write_bytes_atomic
from carseg.errors import CarsegError

# pyarrow's type_name of the stores that have no folders and where a completed put is atomic: one put per file.
# Elsewhere (file://, mock://, hdfs://) a file is written under a temporary name and moved.
OBJECT_STORES = ("s3", "gcs", "abfs")
FILE, DIRECTORY = 2, 3  # pyarrow.fs.FileType's values (not imported: plain folders never load pyarrow)


def _line(exc: BaseException) -> str:
    """An error's first line (pyarrow's can run to pages)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _os_error(exc: OSError) -> OSError:
    """pyarrow's OSError as one with a one-line ``strerror``, as ``Path``'s have (not found stays not found)."""
    kind = FileNotFoundError if isinstance(exc, FileNotFoundError) else OSError
    return kind(exc.errno or errno.EIO, exc.strerror or _line(exc))


class StoredPath(os.PathLike):
    """A file or folder in a pyarrow ``FileSystem``. ``os.fspath`` and ``str`` give its URI: a name (suffixes,
    messages, rows), never a local file to open. Pickled with its filesystem's options (a Ray actor, a worker
    process), which each process builds once."""

    def __init__(self, fs: Any, path: str, scheme: str, kind: Optional[int] = None, data: Optional[bytes] = None):
        self.fs, self.path, self.scheme = fs, path, scheme
        self._kind = kind  # FILE or DIRECTORY when a listing said so (no second request), else None: ask
        self._data = data  # the file's bytes once fetched (fetched())

    # names, as PurePosixPath's
    def __fspath__(self) -> str:
        return f"{self.scheme}://{self.path}"

    __str__ = __fspath__

    def __repr__(self) -> str:
        return f"StoredPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredPath) and (self.scheme, self.path) == (other.scheme, other.path)

    def __lt__(self, other: "StoredPath") -> bool:
        return self.path < other.path

    def __hash__(self) -> int:
        return hash((self.scheme, self.path))

    def __reduce__(self):
        return _restored, (pickle.dumps(self.fs), self.path, self.scheme, self._data)

    def _at(self, path: str, kind: Optional[int] = None) -> "StoredPath":
        return StoredPath(self.fs, path, self.scheme, kind)

    def __truediv__(self, other: Union[str, PurePosixPath]) -> "StoredPath":
        return self._at(posixpath.normpath(posixpath.join(self.path, str(other))))

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> "StoredPath":
        return self._at(posixpath.dirname(self.path) or self.path)

    @property
    def parents(self) -> List["StoredPath"]:
        found, place = [], self
        while place.parent.path != place.path:
            place = place.parent
            found.append(place)
        return found

    def with_name(self, name: str) -> "StoredPath":
        return self.parent / name

    def relative_to(self, other: "StoredPath") -> PurePosixPath:
        return PurePosixPath(self.path).relative_to(other.path)

    def resolve(self) -> "StoredPath":
        return self  # no links to follow

    # questions: a failure is one line naming the place (credentials, a missing bucket, no network)
    def _info_kind(self) -> int:
        if self._kind is None:
            try:
                return self.fs.get_file_info(self.path).type.value
            except OSError as exc:
                raise CarsegError(f"{self}: cannot read there ({_line(exc)})") from None
        return self._kind

    def is_file(self) -> bool:
        return self._info_kind() == FILE

    def is_dir(self) -> bool:
        return self._info_kind() == DIRECTORY

    def exists(self) -> bool:
        return self._info_kind() in (FILE, DIRECTORY)

    def is_symlink(self) -> bool:
        return False

    def listing(self, recursive: bool) -> Iterator["StoredPath"]:
        """The files and folders under this folder (all levels with ``recursive``), each knowing which it is."""
        from pyarrow.fs import FileSelector

        try:
            infos = self.fs.get_file_info(FileSelector(self.path, allow_not_found=True, recursive=recursive))
        except OSError as exc:
            raise CarsegError(f"{self}: cannot list it ({_line(exc)})") from None
        return (self._at(info.path, info.type.value) for info in infos)

    def iterdir(self) -> Iterator["StoredPath"]:
        return self.listing(recursive=False)

    def rglob(self, pattern: str) -> Iterator["StoredPath"]:
        if pattern != "*":
            raise ValueError(f"{self}: only rglob('*') is supported")
        return self.listing(recursive=True)

    # bytes in and out
    def read_bytes(self) -> bytes:
        if self._data is not None:
            return self._data
        try:
            with self.fs.open_input_stream(self.path) as stream:
                return stream.read()
        except OSError as exc:
            raise _os_error(exc) from None

    def fetched(self) -> "StoredPath":
        """This file with its bytes read once: what every later ``read_bytes`` returns."""
        return StoredPath(self.fs, self.path, self.scheme, FILE, self.read_bytes())

    @property
    def object_store(self) -> bool:
        fs = self.fs
        while hasattr(fs, "base_fs"):  # a SubTreeFileSystem: its base's kind
            fs = fs.base_fs
        return fs.type_name in OBJECT_STORES

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """The folder, where the store has folders (an object store has none: a put makes the file's name)."""
        if not self.object_store:
            try:
                self.fs.create_dir(self.path, recursive=parents)
            except OSError as exc:
                raise _os_error(exc) from None

    def write_bytes(self, data: bytes) -> None:
        """Atomically: one put in an object store (the object appears when the upload completes); elsewhere a
        hidden temporary file moved onto the name. A failed write leaves no file."""
        target = self if self.object_store else self.with_name(f".{self.name}.tmp")
        try:
            self.parent.mkdir()
            with self.fs.open_output_stream(target.path) as stream:
                stream.write(data)
            if target is not self:
                self.fs.move(target.path, self.path)
        except OSError as exc:
            if target is not self:
                target.unlink(missing_ok=True)
            raise _os_error(exc) from None

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except OSError as exc:
            raise _os_error(exc) from None


@lru_cache(maxsize=8)
def _filesystem(state: bytes) -> Any:
    return pickle.loads(state)


def _restored(state: bytes, path: str, scheme: str, data: Optional[bytes]) -> StoredPath:
    return StoredPath(_filesystem(state), path, scheme, FILE if data is not None else None, data)


Place = Union[Path, StoredPath]


def location(text: str) -> Place:
    """IN or OUT as given: a path (``C:\\...`` too), or ``scheme://...`` opened by pyarrow's
    ``FileSystem.from_uri``. A URI pyarrow cannot open is one line."""
    parsed = urlparse(text)
    if len(parsed.scheme) < 2 or ("://" not in text and parsed.scheme != "file"):
        return Path(text)
    # as shown in a line: without user:password@ or ?access_key=...&secret_key=... (pyarrow takes both)
    shown = urlunparse(parsed._replace(netloc=parsed.netloc.rpartition("@")[2], query=""))
    try:
        from pyarrow.fs import FileSystem

        fs, path = FileSystem.from_uri(text)
    except ImportError:
        raise CarsegError(f"{shown}: URIs are opened by pyarrow, which is not installed (pip install 'ray[data]')") from None
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise CarsegError(f"{shown}: cannot open it ({_line(exc).replace(text, shown)}); IN and OUT are folders or "
                          "URIs that pyarrow opens (s3://, gs://, file://), with credentials from the environment") from None
    return StoredPath(fs, path.rstrip("/") or path, parsed.scheme)


def object_store(place: Place) -> bool:
    """Whether ``place`` is in an object store (S3, GCS, Azure): read and written by ``--ray`` runs only."""
    return isinstance(place, StoredPath) and place.object_store


def readable(path: Union[str, Place]) -> Union[str, Path, BinaryIO]:
    """What PIL's ``Image.open`` takes: a path's name (it reads the header only), a stored file's bytes."""
    return io.BytesIO(path.read_bytes()) if isinstance(path, StoredPath) else path


def contents(path: Union[str, Place]) -> bytes:
    """A file's bytes."""
    return (path if isinstance(path, StoredPath) else Path(path)).read_bytes()


def fetched(path: Place) -> Place:
    """A stored file with its bytes, read once for all that reads it; a path as it is (its readers read the file)."""
    return path.fetched() if isinstance(path, StoredPath) else path


def write_atomic(path: Place, data: bytes) -> None:
    """``data`` as ``path``, its folder made if needed; a reader never sees half a file."""
    if isinstance(path, StoredPath):
        path.write_bytes(data)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)


def check_writable(folder: Place) -> None:
    """Make ``folder`` if needed and prove a file can be written there (raises OSError): a temporary file, in a store
    a hidden empty one written and deleted."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(folder, StoredPath):
        probe = folder / ".carseg-write-check"
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)
    else:
        tempfile.TemporaryFile(dir=folder).close()


def files_among(paths: Iterable[Place]) -> Set[Place]:
    """Those of ``paths`` that are files: a stat each, or for stored ones one listing of the folder that holds them
    all (a million outputs: a thousand list requests, not a million)."""
    paths = list(paths)
    stored = [p for p in paths if isinstance(p, StoredPath)]
    found = {p for p in paths if not isinstance(p, StoredPath) and p.is_file()}
    if stored:
        top = stored[0]._at(posixpath.commonpath([p.parent.path for p in stored]))
        files = {place.path for place in top.listing(recursive=True) if place._kind == FILE}
        found.update(p for p in stored if p.path in files)
    return found
