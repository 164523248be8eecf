"""The model registry: versions with lineage, references and aliases."""

from loopwise.registry.records import ModelRef, ModelVersion
from loopwise.registry.service import code_version, lineage, register, resolve, set_alias
from loopwise.registry.versions import parse_model_ref

__all__ = [
    "ModelRef",
    "ModelVersion",
    "code_version",
    "lineage",
    "parse_model_ref",
    "register",
    "resolve",
    "set_alias",
]
