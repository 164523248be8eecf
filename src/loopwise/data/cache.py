"""Download-and-verify: fetch a file once, check its sha256, keep it in the cache.

A file enters the cache only whole and verified: it is written to a temporary file next to its destination,
hashed while it is written, and renamed into place only when the digest matches. A cached file whose digest
no longer matches is removed and fetched again. Nothing here imports pandas.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from loopwise.config import Settings
from loopwise.errors import ChecksumError, DataError, DownloadError

#: ``progress(done, total)``: called from the calling thread as work advances; ``total`` is None while
#: unknown. Downloads report bytes; imports report rows read (total None), then rows written (total known).
#: Must not raise.
Progress = Callable[[int, int | None], None]

REVIEWS_FILENAME = "womens_clothing_ecommerce_reviews.csv"
DEFAULT_TIMEOUT_S = 60.0
_BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def reviews_cache_path(settings: Settings) -> Path:
    """Where the course reviews CSV lives once fetched."""
    return settings.resolved_cache_dir / "reviews" / REVIEWS_FILENAME


def fetch_reviews(
    settings: Settings,
    *,
    url: str | None = None,
    source_file: Path | str | None = None,
    expected_sha256: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """The course reviews CSV in the cache, fetched and verified if it is not there yet.

    ``source_file`` (a local copy, e.g. from ``--file``) wins over ``url``; ``url`` defaults to
    ``settings.reviews_url`` and the digest to ``settings.reviews_sha256``. A verified cached copy is
    returned without touching the network. Raises :class:`DownloadError` or :class:`ChecksumError`.
    """
    source = source_file if source_file is not None else (url or settings.reviews_url)
    expected = expected_sha256 or settings.reviews_sha256
    return fetch(source, reviews_cache_path(settings), expected, progress=progress)


def fetch(
    url_or_path: str | Path,
    dest: Path,
    sha256: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
) -> Path:
    """Put the file at ``url_or_path`` (http(s)/file URL or path) at ``dest``, verified against ``sha256``.

    Returns ``dest``. When ``dest`` exists and matches ``sha256``, nothing is downloaded (a local source is
    still verified, so a wrong ``--file`` is reported, and the good copy kept); when it exists but does not
    match, it is removed first. Without ``sha256`` an existing ``dest`` is replaced (nothing to check it
    against). On any error ``dest`` is left absent and no temporary file remains.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is not None and sha256_file(dest) == expected:
            if _local_source(url_or_path) is None:
                return dest
        else:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            actual = _copy_into(url_or_path, handle, timeout=timeout, progress=progress)
            handle.flush()
            os.fsync(handle.fileno())
        if expected is not None and actual != expected:
            raise ChecksumError(
                f"{url_or_path} has sha256 {actual}, expected {expected}; the file was not kept. "
                "It is corrupt, truncated or a different file: fetch it again or check the expected digest."
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def _copy_into(source: str | Path, out: BinaryIO, *, timeout: float, progress: Progress | None) -> str:
    """Stream ``source`` into ``out``; return the hex sha256 of what was written."""
    local = _local_source(source)
    if local is not None:
        try:
            with open(local, "rb") as handle:
                return _pump(handle, out, os.fstat(handle.fileno()).st_size, progress)[0]
        except FileNotFoundError:
            raise DataError(f"no file at {local}; check the path given with --file") from None
        except IsADirectoryError:
            raise DataError(f"{local} is a directory, not a file") from None
    url = str(source)
    request = urllib.request.Request(url, headers={"User-Agent": "loopwise"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digest, done = _pump(response, out, total, progress)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {url}: {reason}. If this machine is offline, get the file elsewhere and "
            "pass it with --file PATH."
        ) from exc
    if total is not None and done != total:
        raise DownloadError(f"the download of {url} stopped after {done} of {total} bytes; try again")
    return digest


def _local_source(source: str | Path) -> Path | None:
    if isinstance(source, Path):
        return source
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    if len(parsed.scheme) > 1:  # an unknown scheme; a one-letter "scheme" is a Windows drive
        raise DownloadError(f"cannot fetch {source}: only http(s), ftp and file URLs or local paths work")
    return Path(source)


def _pump(source: BinaryIO, out: BinaryIO, total: int | None, progress: Progress | None) -> tuple[str, int]:
    """Copy in blocks; return the hex sha256 and the number of bytes."""
    digest = hashlib.sha256()
    done = 0
    while block := source.read(_BLOCK):
        digest.update(block)
        out.write(block)
        done += len(block)
        if progress is not None:
            progress(done, total)
    return digest.hexdigest(), done


__all__ = ["Progress", "fetch", "fetch_reviews", "reviews_cache_path", "sha256_file"]
