"""Artifact stores: where data set files, checkpoints, exports, reports and review outputs live.

:func:`open_artifacts` builds the store the settings name: a directory by default
(:class:`LocalArtifactStore`), any fsspec file system for a URL (:class:`FsspecArtifactStore`; ``s3://``
through s3fs, ``loopwise[s3]``). Every store keeps :class:`ArtifactStore`'s contract.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from loopwise.errors import ConfigurationError, MissingExtraError
from loopwise.storage.artifacts._base import MARKER, ArtifactStore, Manifest, local_path, sha256_of
from loopwise.storage.artifacts.cache import ArtifactCache
from loopwise.storage.artifacts.local import LocalArtifactStore
from loopwise.storage.artifacts.remote import FsspecArtifactStore

if TYPE_CHECKING:
    from loopwise.config import Settings

__all__ = [
    "MARKER",
    "ArtifactCache",
    "ArtifactStore",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "Manifest",
    "local_path",
    "open_artifacts",
    "sha256_of",
]

_PROTOCOL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


def open_artifacts(settings: Settings) -> ArtifactStore:
    """The artifact store ``settings`` name (LOOPWISE_ARTIFACTS, else LOOPWISE_ARTIFACT_ROOT, else
    ``$LOOPWISE_HOME/artifacts``). A setting loopwise cannot use is a :class:`ConfigurationError` that
    names it and says what to write instead; ``s3://`` without s3fs a :class:`MissingExtraError`."""
    location = settings.resolved_artifacts.strip()
    if settings.artifacts and settings.artifact_root is not None:
        raise ConfigurationError(
            "LOOPWISE_ARTIFACTS and LOOPWISE_ARTIFACT_ROOT are both set: set LOOPWISE_ARTIFACTS alone "
            "(LOOPWISE_ARTIFACT_ROOT is its older, directory-only name)"
        )
    found = _PROTOCOL.match(location)
    if found is None or found[1].lower() == "file":
        if settings.artifacts_options:
            raise ConfigurationError(
                "LOOPWISE_ARTIFACTS_OPTIONS is set, but the artifacts are a directory: options are for "
                "an fsspec URL such as s3://bucket/prefix"
            )
        if location.startswith("file://") and not location.startswith("file:///"):
            raise ConfigurationError(
                f"LOOPWISE_ARTIFACTS={location}: a file URL names no host; write file:///absolute/path "
                "or the directory itself"
            )
        return LocalArtifactStore(local_path(location))
    cache = ArtifactCache(settings.resolved_artifact_cache_dir, int(settings.artifact_cache_size))
    fs, root = _file_system(location, found[1].lower(), settings.artifacts_options)
    return FsspecArtifactStore(location, fs, root, work=settings.home / "artifact-work", cache=cache)


def _file_system(location: str, protocol: str, options: dict[str, object]) -> tuple[object, str]:
    import fsspec
    from fsspec.core import url_to_fs

    setting = f"LOOPWISE_ARTIFACTS={location}"
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ConfigurationError(
            f"{setting}: fsspec knows no file system {protocol!r}; use a directory, "
            "s3://bucket/prefix, or another fsspec URL"
        ) from None
    except ImportError as exc:
        if protocol in ("s3", "s3a"):
            raise MissingExtraError(
                f"{setting} needs s3fs, which this installation lacks: pip install 'loopwise[s3]'"
            ) from None
        raise ConfigurationError(f"{setting} needs a package this installation lacks: {exc}") from None
    try:
        fs, root = url_to_fs(location, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{setting} (with LOOPWISE_ARTIFACTS_OPTIONS): {exc}") from None
    root = str(root).rstrip("/")
    if not root:
        raise ConfigurationError(
            f"{setting} names no bucket or folder: write s3://bucket or s3://bucket/prefix"
        )
    if protocol in ("s3", "s3a"):
        bucket = root.split("/")[0]
        try:
            reachable = fs.exists(bucket)
        except Exception as exc:  # botocore's and aiohttp's errors: a wrong endpoint, no credentials
            raise ConfigurationError(f"{setting}: cannot reach bucket {bucket} ({exc})") from None
        if not reachable:
            raise ConfigurationError(
                f"{setting}: bucket {bucket} does not exist or cannot be reached: create it, or check the "
                "endpoint (LOOPWISE_ARTIFACTS_OPTIONS) and the credentials"
            )
    return fs, root
