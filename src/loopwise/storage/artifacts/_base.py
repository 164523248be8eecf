"""The artifact store's contract: what every store (a directory, an fsspec file system) promises.

An *artifact* is a directory of files under a *key* (a relative POSIX path such as ``models/<run id>`` or
``datasets/<content hash>``), written once by :meth:`ArtifactStore.commit_dir` (or :meth:`writing`) and
then read whole. Its *manifest* (:class:`Manifest`) lists each file's sha256 and size and one digest of
them all; it is recorded at commit and travels with the artifact as the commit marker ``MARKER``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from loopwise.errors import ChecksumError, NotFoundError

#: the commit marker: the artifact's manifest, written last (an artifact without it does not exist)
MARKER = ".loopwise-artifact.json"
_CHUNK = 1 << 20
T = TypeVar("T")


def check_key(key: str) -> str:
    """``key`` as a normalised relative POSIX path; :class:`ValueError` for an empty key, an absolute one,
    one that climbs out of the store (``..``) or one that names the marker."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or not parts or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"artifact key {key!r} leaves the artifact store: use a relative path")
    if MARKER in parts or parts[0] == ".staging":
        raise ValueError(f"artifact key {key!r} names the store's own files")
    return "/".join(parts)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What an artifact holds: ``files`` maps each file's relative POSIX path to ``(sha256, size)``;
    ``digest`` is the sha256 of that mapping (sorted, as JSON), so two artifacts with the same files have
    the same digest whatever their keys."""

    files: dict[str, tuple[str, int]]
    digest: str

    @classmethod
    def of(cls, files: dict[str, tuple[str, int]]) -> Manifest:
        canonical = json.dumps(sorted([p, h, n] for p, (h, n) in files.items()), separators=(",", ":"))
        return cls(dict(files), hashlib.sha256(canonical.encode()).hexdigest())

    @classmethod
    def of_directory(cls, root: Path) -> Manifest:
        """The manifest of the files under ``root`` (the marker excluded; symbolic links refused)."""
        files: dict[str, tuple[str, int]] = {}
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                if relative == MARKER:
                    continue
                if path.is_symlink():
                    raise ValueError(f"an artifact holds no symbolic link: {relative}")
                files[relative] = (sha256_of(path), path.stat().st_size)
        return cls.of(files)

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files.values())

    def to_json(self) -> bytes:
        document = {"version": 1, "digest": self.digest, "files": {p: list(v) for p, v in self.files.items()}}
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """The manifest a marker holds; :class:`ChecksumError` when it is unreadable or its digest does not
        match its files."""
        try:
            document = json.loads(data)
            files = {str(p): (str(h), int(n)) for p, (h, n) in document["files"].items()}
            manifest = cls.of(files)
        except (ValueError, KeyError, TypeError) as exc:
            raise ChecksumError(
                f"the commit marker of {where} is unreadable ({exc}): commit it again"
            ) from None
        if manifest.digest != document.get("digest"):
            raise ChecksumError(
                f"the commit marker of {where} does not match its own digest: commit it again"
            )
        return manifest

    def check(self, root: Path, where: str) -> None:
        """Raise :class:`ChecksumError` unless ``root`` holds every file of the manifest with its size and
        sha256 (files beyond the manifest are not looked at)."""
        for relative, (sha, size) in self.files.items():
            path = root / relative
            if not path.is_file() or path.stat().st_size != size or sha256_of(path) != sha:
                raise ChecksumError(f"{where}: {relative} is missing or not the file that was committed")


class ArtifactStore(ABC):
    """Where artifacts live, and the only way callers reach them: no caller builds a path under the
    store's root itself.

    Contract (``tests/storage/artifact_contract.py`` runs it on every implementation):

    - **Atomic commits.** Writers build an artifact in a local staging directory (:meth:`staging`,
      :meth:`writing`) and :meth:`commit_dir` publishes it whole: a reader sees every file of it or none,
      and a crash at any moment of a commit leaves no visible artifact (at most litter that
      :meth:`exists`, :meth:`list` and :meth:`local` never show).
    - **Idempotent keys.** Committing a key that exists keeps the existing artifact and drops the staged
      copy (content-addressed keys hold the same bytes), unless ``replace=True``, which publishes the new
      one in its place (a reader then sees the old one, nothing, or the new one; never a mix).
    - **Local reads.** :meth:`local` gives a directory on this host holding the artifact's files as
      committed: the artifact itself for a directory store, a copy in the host's digest-checked cache
      for a remote one. Treat it as read-only.
    - **URIs** (:meth:`uri`) are what the metadata database records (model versions, data set splits,
      reports, loop outputs); :meth:`local_file` reads one back, ``file://`` URIs of older rows included.

    Implementations are safe to use from several threads and processes; they raise
    :class:`~loopwise.errors.NotFoundError` for an artifact that does not exist, :class:`ValueError` for a
    malformed key, :class:`~loopwise.errors.ChecksumError` for files that do not match their manifest.
    """

    #: the store's root as a URL (``file:///...``, ``s3://bucket/prefix``)
    url: str

    @abstractmethod
    def staging(self, prefix: str = "stage-") -> Path:
        """A fresh private local directory to build an artifact in (removed by the commit)."""

    @abstractmethod
    def commit_dir(self, staged: Path, key: str, *, replace: bool = False) -> str:
        """Publish the staged directory as ``key`` (see the contract); returns the artifact's URI. The
        staged directory is gone afterwards, whether it was published or dropped."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` is a committed artifact."""

    @abstractmethod
    def manifest(self, key: str) -> Manifest:
        """The committed artifact's manifest."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """The keys of the committed artifacts under ``prefix`` (a key or a folder of keys), sorted."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Remove the artifact: it stops existing at once (its marker goes first); no error when absent."""

    @abstractmethod
    def local(self, key: str) -> Path:
        """A local directory holding the artifact's files (see the contract)."""

    @abstractmethod
    def read_bytes(self, key: str, name: str) -> bytes:
        """One file of a committed artifact, checked against its manifest."""

    @abstractmethod
    def _download(self, key: str, manifest: Manifest, into: Path) -> None:
        """Write the committed files of ``manifest`` (artifact ``key``) under the existing local directory
        ``into``, unchecked (:meth:`copy_out` checks them)."""

    @abstractmethod
    def host_dir(self, name: str) -> Path:
        """A directory on a file system of this process for files that are appended in place (captured
        requests, the human-loop journal), which no object store can hold. A directory store keeps it
        under its root, so the hosts that mount that root share it; an object store keeps it on this
        host's disk."""

    @abstractmethod
    def relative(self, uri: str) -> str | None:
        """The path of ``uri`` inside the store (``key`` or ``key/file``), None when it is elsewhere."""

    def copy_out(self, key: str, into: Path) -> Manifest:
        """Copy the committed artifact ``key`` (its files and its commit marker) into ``into``, a local
        directory made here (it must not exist), and check the copy against the manifest: a backup's copy,
        which :meth:`copy_in` commits into another store. Reads around the host's cache, so a backup does
        not evict the models this host serves. :class:`NotFoundError` when ``key`` is not committed,
        :class:`ChecksumError` when what was read is not what was committed."""
        manifest = self.manifest(key)
        into.mkdir(parents=True)
        for name in manifest.files:
            (into / name).parent.mkdir(parents=True, exist_ok=True)
        self._download(key, manifest, into)
        manifest.check(into, f"artifact {key} of {self.url}")
        (into / MARKER).write_bytes(manifest.to_json())
        return manifest

    def copy_in(self, folder: Path, key: str) -> Manifest:
        """Commit ``folder``, a copy :meth:`copy_out` made, as ``key``, after checking its files against the
        marker it carries; returns the manifest. :class:`ChecksumError` when the copy is damaged (a missing
        or unreadable marker, a file missing or changed), or when ``key`` is committed already with other
        content; a key committed with the same content is kept (a restore run again)."""
        where = f"the copy of artifact {key} at {folder}"
        try:
            marker = (folder / MARKER).read_bytes()
        except OSError:
            raise ChecksumError(f"{where} has no commit marker {MARKER}: the copy is incomplete") from None
        manifest = Manifest.from_json(marker, where)
        manifest.check(folder, where)
        staged = self.staging()
        try:
            for name in manifest.files:
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, staged / name)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        self.commit_dir(staged, key)
        if self.manifest(key).digest != manifest.digest:
            raise ChecksumError(
                f"artifact {key} of {self.url} exists already with other content than {where}"
            )
        return manifest

    def uri(self, key: str, name: str = "") -> str:
        """The URI of artifact ``key`` (of file ``name`` in it when given)."""
        key = check_key(key)
        return f"{self.url}/{key}/{check_key(name)}" if name else f"{self.url}/{key}"

    def locate(self, uri: str) -> tuple[str, str]:
        """The artifact holding ``uri`` and the file's path inside it (``""`` for the artifact itself);
        :class:`NotFoundError` when no committed artifact holds it."""
        inside = self.relative(uri)
        if inside is not None:
            parts = inside.split("/")
            for cut in range(len(parts), 0, -1):
                key = "/".join(parts[:cut])
                if self.exists(key):
                    return key, "/".join(parts[cut:])
        raise NotFoundError(f"{uri} is not a committed artifact of the artifact store {self.url}")

    def local_file(self, uri: str) -> Path:
        """A local path holding what ``uri`` names (an artifact's directory, or a file in one): through
        :meth:`local` for this store's URIs; a ``file://`` URI or a plain path elsewhere (rows recorded
        before the store moved) as it is, when it exists on this host."""
        if self.relative(uri) is not None:
            try:
                key, name = self.locate(uri)
            except NotFoundError:
                if not uri.startswith("file://"):
                    raise
            else:
                return self.local(key) / name if name else self.local(key)
        if "://" not in uri or uri.startswith("file://"):
            path = local_path(uri)
            if path.exists():
                return path
        raise NotFoundError(f"{uri} is neither in the artifact store {self.url} nor a file on this host")

    def read_uri(self, uri: str) -> bytes:
        """The bytes of the file ``uri`` names (see :meth:`local_file` for the URIs it takes)."""
        if self.relative(uri) is not None and not uri.startswith("file://"):
            key, name = self.locate(uri)
            if name:
                return self.read_bytes(key, name)
        return self.local_file(uri).read_bytes()

    @contextmanager
    def writing(self, key: str, *, replace: bool = False) -> Iterator[Path]:
        """A staging directory to fill, committed as ``key`` when the block ends normally and discarded
        when it raises."""
        check_key(key)
        staged = self.staging()
        try:
            yield staged
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        self.commit_dir(staged, key, replace=replace)

    def write_with(self, key: str, write: Callable[[Path], T], *, replace: bool = True) -> T:
        """Run ``write(folder)`` in a staging folder committed as ``key`` (replacing the artifact there
        by default: reports are written again); returns what ``write`` returned with every path in the
        staging folder (a :class:`~pathlib.Path`, in a tuple or a dataclass's fields) moved to this
        host's copy of the artifact (:meth:`local`)."""
        with self.writing(key, replace=replace) as staged:
            written = write(staged)
        local = self.local(key)

        def moved(value: Any) -> Any:
            if isinstance(value, Path) and value.is_relative_to(staged):
                return local / value.relative_to(staged)
            if type(value) is tuple:
                return tuple(moved(v) for v in value)
            if is_dataclass(value) and not isinstance(value, type):
                return dataclasses.replace(
                    value, **{f.name: moved(getattr(value, f.name)) for f in fields(value)}
                )
            return value

        return moved(written)

    def put_bytes(self, key: str, name: str, data: bytes, *, replace: bool = False) -> str:
        """Commit an artifact of one file; returns the file's URI."""
        with self.writing(key, replace=replace) as staged:
            target = staged / check_key(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return self.uri(key, name)


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI or a plain path (:class:`NotFoundError` for other URLs)."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        raise NotFoundError(f"{uri!r} is not a local file: read it through the artifact store")
    return Path(uri)
