"""A local-directory artifact store. Keys are relative POSIX paths; URIs are ``file://`` URLs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from loopwise._private import DIR_MODE, make_private, private_dir
from loopwise.errors import ConfigurationError, NotFoundError


class LocalArtifactStore:
    """Artifacts as files under one root directory.

    Writers fill a staging directory (:meth:`staging`) and :meth:`commit_dir` moves it into place with a
    rename, so a reader never sees a half-written artifact and a crash leaves only staging litter.

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

    def path(self, key: str) -> Path:
        """The local path of ``key``. A writer that does not go through :meth:`staging` makes its folders
        with :func:`loopwise._private.private_dir` and its files with ``open_private``."""
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise ValueError(f"artifact key {key!r} leaves the artifact root")
        return path

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def staging(self, prefix: str = "stage-") -> Path:
        """A fresh private directory to build an artifact in."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / ".staging"))

    def commit_dir(self, staged: Path, key: str) -> str:
        """Move a staged directory to ``key`` atomically; if ``key`` exists already, keep it (content
        addressed keys hold the same bytes) and drop the staged copy. Returns the URI."""
        target = self.path(key)
        make_private(staged)  # files written with the umask's mode become 0600 before anyone can see them
        private_dir(target.parent, repair=False)
        try:
            os.rename(staged, target)
        except OSError:
            if not target.exists():
                raise
            shutil.rmtree(staged, ignore_errors=True)
        return target.as_uri()

    def remove(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI or a plain path."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        raise NotFoundError(f"only local artifacts are supported for now, not {uri!r}")
    return Path(uri)
