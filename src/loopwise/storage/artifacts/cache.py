"""The host's cache of remote artifacts: local copies keyed by digest, checked, bounded in size.

Layout under the cache's root::

    objects/<digest>/...    the artifact's files, exactly as committed
    meta/<digest>.json      each file's size and mtime when it was last checked; its mtime is the last use
    locks/<digest>.lock     held (flock) while the entry is checked, fetched or evicted
    tmp/                    fetches in progress and entries on their way out

An entry is made by fetching into ``tmp/``, checking every file's sha256 against the manifest, and one
``rename`` into ``objects/``, all under the digest's lock: two processes that want the same artifact at
once fetch it once (the second waits, then finds it), and a process killed mid-fetch leaves only ``tmp/``
litter. On every use an entry's files are compared with ``meta/`` (size and mtime); a file that changed,
went missing, or was never checked is hashed again, and an entry that fails is moved out and fetched again.
After a fetch, least recently used entries are evicted until the cache is within its bound (the entry just
used is kept even when it alone is larger; an entry another process holds locked is skipped).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from loopwise._private import private_dir
from loopwise.errors import ChecksumError
from loopwise.storage.artifacts._base import Manifest

#: the default bound of a host's cache, in bytes (LOOPWISE_ARTIFACT_CACHE_SIZE)
DEFAULT_MAX_BYTES = 10 * 1024**3


class ArtifactCache:
    """Local copies of artifacts, at most ``max_bytes`` (see the module's docstring). Safe across threads
    and processes of one host."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("the artifact cache's size must not be negative")
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes
        for sub in ("objects", "meta", "locks", "tmp"):
            private_dir(self.root / sub)
        #: how many entries this object fetched (tests and logs read it)
        self.fetches = 0

    def get(self, manifest: Manifest, fetch: Callable[[Path], None], where: str) -> Path:
        """The directory holding ``manifest``'s files: the cached entry when it checks out, else fetched
        with ``fetch(into)`` (which writes the artifact's files under ``into``) and checked; the second
        of two failed checks raises :class:`ChecksumError` naming ``where``."""
        entry = self.root / "objects" / manifest.digest
        with self._locked(manifest.digest):
            if entry.is_dir() and self._sound(entry, manifest):
                self._used(manifest.digest)
                return entry
            self._discard(entry)
            for attempt in range(2):
                staged = Path(tempfile.mkdtemp(prefix=f"{manifest.digest[:16]}-", dir=self.root / "tmp"))
                try:
                    fetch(staged)
                    self.fetches += 1
                    manifest.check(staged, where)
                except ChecksumError:
                    shutil.rmtree(staged, ignore_errors=True)
                    if attempt:
                        raise
                    continue
                except BaseException:
                    shutil.rmtree(staged, ignore_errors=True)
                    raise
                os.rename(staged, entry)
                self._remember(entry, manifest)
                break
        self.evict(keep=manifest.digest)
        return entry

    def entries(self) -> dict[str, tuple[int, float]]:
        """digest -> (bytes, last use as a POSIX time) of every entry."""
        found = {}
        for meta in (self.root / "meta").glob("*.json"):
            try:
                size = sum(int(n) for n, _ in json.loads(meta.read_text())["files"].values())
                found[meta.stem] = (size, meta.stat().st_mtime)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used entries (never ``keep``, nor one another process holds) until the
        cache is within its bound; returns the digests removed."""
        entries = self.entries()
        total = sum(size for size, _ in entries.values())
        removed = []
        for digest, (size, _) in sorted(entries.items(), key=lambda item: item[1][1]):
            if total <= self.max_bytes:
                break
            if digest == keep:
                continue
            with self._locked(digest, wait=False) as held:
                if not held:
                    continue
                self._discard(self.root / "objects" / digest)
                total -= size
                removed.append(digest)
        return removed

    def _sound(self, entry: Path, manifest: Manifest) -> bool:
        """Whether the entry holds the manifest's files: by size and mtime against the last check, and by
        sha256 where those changed."""
        meta = self.root / "meta" / f"{manifest.digest}.json"
        try:
            seen = {p: tuple(v) for p, v in json.loads(meta.read_text())["files"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            seen = {}
        if seen:
            current: dict[str, tuple[int, int]] = {}
            for relative in manifest.files:
                try:
                    stat = (entry / relative).stat()
                except OSError:
                    return False
                current[relative] = (stat.st_size, stat.st_mtime_ns)
            if current == seen and all(current[p][0] == n for p, (_, n) in manifest.files.items()):
                return True
        try:
            manifest.check(entry, "cached copy")
        except ChecksumError:
            return False
        self._remember(entry, manifest)
        return True

    def _remember(self, entry: Path, manifest: Manifest) -> None:
        files = {}
        for relative in manifest.files:
            stat = (entry / relative).stat()
            files[relative] = [stat.st_size, stat.st_mtime_ns]
        meta = self.root / "meta" / f"{manifest.digest}.json"
        staged = meta.with_name(f".{meta.name}.{uuid.uuid4().hex}")
        staged.write_text(json.dumps({"files": files}))
        staged.replace(meta)

    def _used(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.root / "meta" / f"{digest}.json")

    def _discard(self, entry: Path) -> None:
        """Take an entry out (rename first, so no reader finds half of it), then delete it."""
        (self.root / "meta" / f"{entry.name}.json").unlink(missing_ok=True)
        trash = self.root / "tmp" / f"out-{entry.name[:16]}-{uuid.uuid4().hex}"
        try:
            os.rename(entry, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self, digest: str, *, wait: bool = True) -> Iterator[bool]:
        fd = os.open(self.root / "locks" / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock
