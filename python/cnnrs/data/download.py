"""Where data set files live, md5 checks, and verified atomic downloads.

Root folder of a data set (first match wins):

1. the ``root`` argument of the data set,
2. ``$CNNRS_DATA/<name>`` (``name`` is ``mnist``, ``fashion-mnist`` or ``cifar-10``),
3. ``~/.cache/cnnrs/<name>``.

Download base URL (first match wins):

1. the ``mirror`` argument of the data set (the folder URL that holds the files),
2. ``$CNNRS_DATA_MIRROR/<name>/`` (a mirror laid out like ``$CNNRS_DATA``),
3. the official URL of the data set.

A download streams into a temporary file in the destination folder, is
fsync'ed, its md5 compared with the published one, and only then renamed onto
the final name with :func:`os.replace`; a failed or interrupted download never
leaves a partial or unverified file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

from .errors import ChecksumError, DatasetNotFoundError, DownloadError

DATA_ENV = "CNNRS_DATA"
MIRROR_ENV = "CNNRS_DATA_MIRROR"

PathLike = Union[str, "os.PathLike[str]"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def resolve_root(root: Optional[PathLike], name: str) -> Tuple[Path, str]:
    """The folder that holds data set ``name``, and a phrase saying where it came from."""
    if root is not None:
        return Path(root).expanduser(), "the root argument"
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser() / name, f"${DATA_ENV}={env}"
    return Path.home() / ".cache" / "cnnrs" / name, f"the default (${DATA_ENV} is not set)"


def resolve_base_url(mirror: Optional[str], name: str, official: str) -> str:
    """The URL of the folder to download ``name``'s files from, ending in ``/``."""
    if mirror:
        return mirror.rstrip("/") + "/"
    env = os.environ.get(MIRROR_ENV)
    if env:
        return f"{env.rstrip('/')}/{name}/"
    return official.rstrip("/") + "/"


def md5_of(path: PathLike) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_valid_file(path: Path, md5: Optional[str]) -> bool:
    """True when ``path`` is a regular file and (if ``md5`` is given) has that md5."""
    return path.is_file() and (md5 is None or md5_of(path) == md5)


def require_files(dataset: str, paths: Iterable[Path], root_source: str, hint: str = "") -> None:
    """Raise :class:`DatasetNotFoundError` naming every missing path."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{dataset}: file(s) not found: {', '.join(missing)} (root from {root_source}). "
            f"Pass download=True, set ${DATA_ENV} to a folder that holds the data set's folder, "
            f"or copy the files there.{hint}"
        )


def download_files(
    dataset: str, root: Path, base_url: str, resources: Sequence[Tuple[str, Optional[str]]]
) -> None:
    """Download every ``(filename, md5)`` of ``resources`` into ``root`` unless already valid there."""
    for filename, md5 in resources:
        path = root / filename
        if is_valid_file(path, md5):
            continue
        hint = (
            f" Without network access, copy {filename} into {root} (or set ${DATA_ENV} to a folder that "
            f"holds a copy of the data set's folder, or ${MIRROR_ENV} to a reachable mirror)."
        )
        _progress(f"{dataset}: downloading {base_url}{filename} -> {path}")
        download_file(base_url + filename, path, md5, hint=hint)


def download_file(
    url: str, dest: PathLike, md5: Optional[str], *, timeout: float = _TIMEOUT_S, hint: str = ""
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking ``md5`` (hex) when given.

    Raises :class:`DownloadError` when the URL cannot be fetched and
    :class:`ChecksumError` when the content has the wrong md5; in both cases no
    file is left at ``dest`` (an older file there is kept untouched).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch_into(url, out, timeout, hint)
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest != md5:
            raise ChecksumError(
                f"downloaded {url} has md5 {digest}, expected {md5}: the mirror serves a different or "
                f"damaged file; nothing was written to {dest}.{hint}"
            )
        os.replace(tmp_name, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return dest


def _fetch_into(url: str, out, timeout: float, hint: str) -> str:
    """Stream ``url`` into the open binary file ``out``; return the hex md5 of the bytes."""
    digest = hashlib.md5()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "cnnrs"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"downloading {url} failed: HTTP {e.code} {e.reason}.{hint}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"could not download {url}: {reason}. Is there a network connection, and is the URL right?{hint}"
        ) from e
    with response, _progress_bar(response.headers.get("Content-Length"), url) as bar:
        expected = response.headers.get("Content-Length")
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise DownloadError(f"downloading {url} failed after {received} bytes: {e}.{hint}") from e
            if not chunk:
                break
            out.write(chunk)  # a local write error (disk full) propagates as itself
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if expected is not None and expected.isdigit() and received != int(expected):
        raise DownloadError(
            f"downloading {url} stopped after {received} of {expected} bytes (connection dropped).{hint}"
        )
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; some file systems refuse to open folders, which is harmless."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


def _progress_bar(total: Optional[str], url: str):
    """A tqdm byte counter on interactive terminals (tqdm's disable=None), else nothing."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but downloads must not need it
        return _NoBar()
    size = int(total) if total is not None and total.isdigit() else None
    return tqdm(total=size, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=None, leave=False)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


__all__ = [
    "DATA_ENV",
    "MIRROR_ENV",
    "download_file",
    "download_files",
    "is_valid_file",
    "md5_of",
    "require_files",
    "resolve_base_url",
    "resolve_root",
]
