"""Artifact stores: where data files, checkpoints and reports live. The local directory is the default."""

from loopwise.storage.artifacts.local import LocalArtifactStore

__all__ = ["LocalArtifactStore"]
