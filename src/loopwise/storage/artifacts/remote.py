"""An artifact store on any fsspec file system: S3 and S3-compatible object stores (``s3://bucket/prefix``
through s3fs), or whatever else fsspec reaches.

Object stores have no rename, so a commit uploads the staged files under the key and then writes the commit
marker (the manifest, one PUT, which S3 makes visible whole or not at all). An artifact without its marker
does not exist: a writer that dies between the upload and the marker leaves files nobody reads, which the
next commit of the key overwrites. Reads that need local files go through the host's
:class:`~loopwise.storage.artifacts.cache.ArtifactCache`, keyed and checked by the manifest's digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from loopwise._private import private_dir
from loopwise.errors import ChecksumError, NotFoundError
from loopwise.storage.artifacts._base import MARKER, ArtifactStore, Manifest, check_key
from loopwise.storage.artifacts.cache import ArtifactCache


class FsspecArtifactStore(ArtifactStore):
    """Artifacts under ``url`` on the fsspec file system ``fs``; staging and :meth:`host_dir` under the
    local ``work`` directory, local copies in ``cache``."""

    def __init__(self, url: str, fs: Any, root: str, *, work: Path, cache: ArtifactCache) -> None:
        self.url = url.rstrip("/")
        self.fs = fs
        self.base = root.rstrip("/")
        self.work = private_dir(Path(work))
        private_dir(self.work / "staging")
        self.cache = cache

    def _remote(self, key: str, name: str = "") -> str:
        return f"{self.base}/{check_key(key)}" + (f"/{name}" if name else "")

    def relative(self, uri: str) -> str | None:
        prefix = self.url + "/"
        return uri[len(prefix) :].strip("/") or None if uri.startswith(prefix) else None

    def staging(self, prefix: str = "stage-") -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.work / "staging"))

    def _marker(self, key: str) -> Manifest | None:
        try:
            data = self.fs.cat_file(self._remote(key, MARKER))
        except FileNotFoundError:
            return None
        return Manifest.from_json(data, f"artifact {key}")

    def exists(self, key: str) -> bool:
        return self._marker(key) is not None

    def manifest(self, key: str) -> Manifest:
        found = self._marker(key)
        if found is None:
            raise NotFoundError(f"artifact {key} does not exist in {self.url}")
        return found

    def commit_dir(self, staged: Path, key: str, *, replace: bool = False) -> str:
        try:
            if not replace and self.exists(key):
                return self.uri(key)  # content-addressed: the same bytes are there already
            manifest = Manifest.of_directory(staged)
            if replace and self.exists(key):
                self.fs.rm_file(self._remote(key, MARKER))  # readers see nothing, then the new artifact
            names = sorted(manifest.files)
            if names:
                # files of an earlier, interrupted commit are overwritten; any beyond the manifest are ignored
                self.fs.put([str(staged / n) for n in names], [self._remote(key, n) for n in names])
            self._publish(key, manifest)
            return self.uri(key)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _publish(self, key: str, manifest: Manifest) -> None:
        """Write the commit marker: from here on the artifact exists."""
        self.fs.pipe_file(self._remote(key, MARKER), manifest.to_json())

    def list(self, prefix: str = "") -> list[str]:
        base = self._remote(prefix) if prefix else self.base
        try:
            paths = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self.base) + 1
        suffix = "/" + MARKER
        keys = [p.rstrip("/")[start : -len(suffix)] for p in paths if p.rstrip("/").endswith(suffix)]
        return sorted(k for k in keys if not any(k.startswith(other + "/") for other in keys))

    def remove(self, key: str) -> None:
        remote = self._remote(key)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{remote}/{MARKER}")  # the artifact stops existing here
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(remote, recursive=True)

    def local(self, key: str) -> Path:
        manifest = self.manifest(key)

        def fetch(into: Path) -> None:
            for name in manifest.files:
                (into / name).parent.mkdir(parents=True, exist_ok=True)
            self._download(key, manifest, into)

        return self.cache.get(manifest, fetch, f"artifact {key} of {self.url}")

    def _download(self, key: str, manifest: Manifest, into: Path) -> None:
        names = sorted(manifest.files)
        if names:
            self.fs.get([self._remote(key, n) for n in names], [str(into / n) for n in names])

    def read_bytes(self, key: str, name: str) -> bytes:
        manifest = self.manifest(key)
        name = check_key(name)
        if name not in manifest.files:
            raise NotFoundError(f"artifact {key} has no file {name}")
        data = bytes(self.fs.cat_file(self._remote(key, name)))
        if hashlib.sha256(data).hexdigest() != manifest.files[name][0]:
            raise ChecksumError(f"{name} of artifact {key} is not the file that was committed")
        return data

    def host_dir(self, name: str) -> Path:
        return private_dir(self.work / "host" / check_key(name), repair=False)
