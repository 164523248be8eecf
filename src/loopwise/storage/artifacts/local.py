"""A directory artifact store: the default (``$LOOPWISE_HOME/artifacts``), or a shared mount several hosts
see at one path. URIs are ``file://`` URLs."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from loopwise._private import DIR_MODE, make_private, private_dir
from loopwise.errors import ConfigurationError, NotFoundError
from loopwise.storage.artifacts._base import MARKER, ArtifactStore, Manifest, check_key, local_path

__all__ = ["LocalArtifactStore", "local_path"]


class LocalArtifactStore(ArtifactStore):
    """Artifacts as directories under one root directory.

    A commit writes the manifest into the staged directory and renames it into place (one ``rename``, atomic
    on a local file system and on NFS), so a reader never sees half an artifact and a crash leaves only
    staging litter under ``.staging``. Reads need no cache: :meth:`local` is the artifact's own directory.
    Directories that older loopwise versions committed carry no marker: they are not artifacts of this
    store's listing, but the ``file://`` URIs recorded for them still read back (:meth:`local_file`), and a
    commit of their key replaces them.

    Artifacts are private to the account that runs loopwise: the root and every directory in it 0700,
    committed files 0600. A root that is not 0700 when the store opens (one an older loopwise made) has
    its whole tree set so.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        try:
            if self.root.is_dir() and self.root.stat().st_mode & 0o777 != DIR_MODE:
                make_private(self.root)
            private_dir(self.root)
            private_dir(self.root / ".staging")
        except OSError as exc:
            raise ConfigurationError(f"cannot create the artifact directory {self.root}: {exc}") from exc
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str, name: str = "") -> str:
        path = self._path(key)
        return (path / check_key(name) if name else path).as_uri()

    def relative(self, uri: str) -> str | None:
        if "://" in uri and not uri.startswith("file://"):
            return None
        path = Path(os.path.normpath(local_path(uri)))
        return path.relative_to(self.root).as_posix() if self.root in path.parents else None

    def exists(self, key: str) -> bool:
        return (self._path(key) / MARKER).is_file()

    def staging(self, prefix: str = "stage-") -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / ".staging"))

    def commit_dir(self, staged: Path, key: str, *, replace: bool = False) -> str:
        target = self._path(key)
        if not replace and self.exists(key):
            shutil.rmtree(staged, ignore_errors=True)
            return target.as_uri()
        replace = replace or target.is_dir()  # a directory an older loopwise left without a marker
        (staged / MARKER).write_bytes(Manifest.of_directory(staged).to_json())
        make_private(staged)  # files written with the umask's mode become 0600 before anyone can see them
        private_dir(target.parent, repair=False)
        old = None
        if replace and target.is_dir():  # moved aside first: rename cannot replace a non-empty directory
            old = self.root / ".staging" / f"replaced-{uuid.uuid4().hex}"
            try:
                os.rename(target, old)
            except FileNotFoundError:
                old = None
        try:
            self._publish(staged, target)
        except OSError:
            if not self.exists(key):
                raise
            shutil.rmtree(staged, ignore_errors=True)  # committed meanwhile by someone else: theirs stays
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target.as_uri()

    def _publish(self, staged: Path, target: Path) -> None:
        """The commit itself: from here on the artifact exists."""
        os.rename(staged, target)

    def manifest(self, key: str) -> Manifest:
        return Manifest.from_json((self.local(key) / MARKER).read_bytes(), f"artifact {key}")

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        found = []
        for folder, directories, names in os.walk(base):
            relative = Path(folder).relative_to(self.root).as_posix()
            if relative == ".staging":
                directories.clear()
                continue
            if MARKER in names:
                found.append(relative)
                directories.clear()  # an artifact's own folders hold no other artifact
        return sorted(found)

    def remove(self, key: str) -> None:
        path = self._path(key)
        trash = self.root / ".staging" / f"removed-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)  # gone at once for readers; the files go after
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def local(self, key: str) -> Path:
        path = self._path(key)
        if not self.exists(key):
            raise NotFoundError(f"artifact {key} does not exist in {self.url}")
        return path

    def read_bytes(self, key: str, name: str) -> bytes:
        path = self.local(key) / check_key(name)
        if not path.is_file():
            raise NotFoundError(f"artifact {key} has no file {name}")
        return path.read_bytes()

    def _download(self, key: str, manifest: Manifest, into: Path) -> None:
        source = self._path(key)
        for name in manifest.files:
            shutil.copyfile(source / name, into / name)

    def host_dir(self, name: str) -> Path:
        return private_dir(self._path(name), repair=False)
