"""Every error loopwise raises on purpose derives from :class:`LoopwiseError`.

The tree::

    LoopwiseError
    ├── ConfigurationError        a setting is missing or invalid
    │   └── MissingExtraError     what was asked needs an optional extra this installation lacks
    ├── NotFoundError             a named thing (data set, run, model version, alias) does not exist
    ├── StorageError              the metadata database failed; nothing was half-written
    │   ├── MigrationError        the schema could not be brought to the current revision
    │   └── LeaseLostError        a background duty's lease moved to another server: its write was refused
    ├── DataError                 input data is unusable
    │   ├── DownloadError         a download failed or was refused
    │   ├── ChecksumError         a file's sha256 is not the expected one
    │   └── DataFormatError       a missing column, empty or non-UTF-8 text, an unknown label
    ├── ClassifierError           a classifier cannot be built, loaded or used
    │   └── CheckpointError       a saved classifier is missing files or corrupt
    ├── TrainingError             a training run failed
    ├── SpecError                 a spec is invalid (every problem listed, each with its field)
    │   ├── TuningSpecError       a tuning spec
    │   ├── EndpointConfigError   an endpoint configuration
    │   └── PipelineSpecError     a pipeline file (every problem with its line)
    ├── EndpointError             an endpoint cannot do what was asked in its state
    ├── AccountError              a workforce request is invalid (a taken email, a weak password)
    ├── AuthError                 a sign-in failed, or a session or token is not (or no longer) valid
    ├── PermissionDeniedError     the signed-in worker's role or teams do not allow what was asked
    ├── LabelingError             a labeling job, manifest or answer was refused
    │   ├── AnswerRefusedError    an answer conflicts with what happened already (HTTP 409)
    │   └── ManifestError         an input manifest is malformed (also a DataError)
    ├── ReviewError               a flow definition or human loop request is invalid
    │   └── HumanLoopConflictError  a loop name taken with other input, a loop in the wrong state (409)
    ├── PipelineError             a pipeline step failed or a run cannot do what was asked
    ├── BackupError               a backup cannot be made, or restored into a target that is not empty
    └── WebhookSignatureError     a webhook delivery's signature is missing, wrong or too old

Messages say what was wrong (naming the file, line and field where there is one) and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence


class LoopwiseError(Exception):
    """Root of every error loopwise raises on purpose."""


class ConfigurationError(LoopwiseError):
    """A setting is missing or has a value loopwise cannot use."""


class MissingExtraError(ConfigurationError):
    """What was asked needs a package of one of loopwise's optional extras (``loopwise[train]``,
    ``loopwise[ray]``) that this installation lacks; the message names the pip command that adds it."""


class NotFoundError(LoopwiseError):
    """A named data set, run, model version or alias does not exist."""


class StorageError(LoopwiseError):
    """The metadata database failed; the transaction was rolled back."""


class LeaseLostError(StorageError):
    """A background duty's lease is no longer this process's (another server took it over): the write
    the duty was about to commit was rolled back, and the duty stops here until it holds the lease again."""


class MigrationError(StorageError):
    """The database schema could not be brought to the revision this loopwise needs."""


class DataError(LoopwiseError):
    """Input data is unusable."""


class DownloadError(DataError):
    """A download failed."""


class ChecksumError(DataError):
    """A file's sha256 differs from the expected one."""


class DataFormatError(DataError):
    """A file has a missing column, empty or non-UTF-8 text, or an unknown label."""


class ClassifierError(LoopwiseError):
    """A classifier cannot be built, loaded or used."""


class CheckpointError(ClassifierError):
    """A saved classifier directory is missing files or is corrupt."""


class TrainingError(LoopwiseError):
    """A training run failed."""


class SpecError(LoopwiseError):
    """A spec or configuration is invalid; nothing ran or changed.

    ``problems`` lists every problem found as ``(field, message)`` pairs, the field a dotted path such as
    ``parameters.learning_rate.min`` and the message saying what to fix.
    """

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = list(problems)


class TuningSpecError(SpecError):
    """A tuning spec is invalid; nothing ran."""


class EndpointConfigError(SpecError):
    """An endpoint configuration is invalid; nothing changed (fields such as ``variants.VariantA.weight``)."""


class EndpointError(LoopwiseError):
    """An endpoint cannot do what was asked in its state (deleting one that is updating, for example)."""


class AccountError(LoopwiseError):
    """A workforce request is invalid: an email already taken, a weak password, an unknown role."""


class AuthError(LoopwiseError):
    """A sign-in failed (the message never says whether the email or the password was wrong), or a
    session or API token is not valid, has expired or was revoked."""


class PermissionDeniedError(LoopwiseError):
    """The signed-in worker's role or teams do not allow what was asked."""


class LabelingError(LoopwiseError):
    """A labeling job or an answer was refused: a bad manifest or setting, a hold that expired, an answer
    submitted twice."""


class AnswerRefusedError(LabelingError):
    """An answer, skip or undo that conflicts with what happened already: submitted twice, a hold that
    expired, a job that no longer takes answers (HTTP 409)."""


class ManifestError(LabelingError, DataError):
    """An input manifest is malformed; the message names the line."""


class ReviewError(LoopwiseError):
    """A flow definition or a human loop request is invalid: bad activation conditions, input that does
    not fit the flow's task template (the message names the field)."""


class HumanLoopConflictError(ReviewError):
    """A human loop request conflicts with what exists: a loop name taken with other input, or a loop
    whose state does not allow it (deleting one in progress) (HTTP 409)."""


class PipelineSpecError(SpecError):
    """A pipeline file is invalid (an unknown operation, a missing input, a cycle); nothing ran. Each
    problem names the step's line."""


class PipelineError(LoopwiseError):
    """A pipeline step failed (the run stops there and can be resumed from it), or a run cannot do what
    was asked in its state."""


class BackupError(LoopwiseError):
    """A backup cannot be made (a database at another schema revision than this loopwise's), or restored
    (a target database or artifact store that is not empty, a backup from a newer loopwise); nothing was
    written, or the message says what was."""


class WebhookSignatureError(LoopwiseError):
    """A webhook delivery's ``X-Loopwise-Signature`` is missing, malformed, wrong or too old
    (:func:`loopwise.webhooks.verify`)."""
