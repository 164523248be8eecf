"""Repositories: queries over the tables that take and return domain objects, never rows.

One module per capability; the unit of work (``storage.session``) hangs one of each off itself.
"""

from loopwise.storage.repositories.bandits import BanditRepository
from loopwise.storage.repositories.datasets import DatasetRepository
from loopwise.storage.repositories.endpoints import EndpointRepository
from loopwise.storage.repositories.evaluations import EvaluationRepository
from loopwise.storage.repositories.feedback import FeedbackRepository
from loopwise.storage.repositories.labeling import LabelingRepository
from loopwise.storage.repositories.labels import LabelsRepository
from loopwise.storage.repositories.leases import LeaseRepository
from loopwise.storage.repositories.models import ModelRepository
from loopwise.storage.repositories.monitoring import MonitoringRepository
from loopwise.storage.repositories.pipelines import PipelineRepository
from loopwise.storage.repositories.review import ReviewRepository
from loopwise.storage.repositories.rollouts import RolloutRepository
from loopwise.storage.repositories.runs import RunRepository
from loopwise.storage.repositories.scaling import ScalingRepository
from loopwise.storage.repositories.tuning import TuningJobRepository
from loopwise.storage.repositories.webhooks import WebhookOutboxRepository
from loopwise.storage.repositories.workforce import WorkforceRepository

__all__ = [
    "BanditRepository",
    "DatasetRepository",
    "EndpointRepository",
    "EvaluationRepository",
    "FeedbackRepository",
    "LabelingRepository",
    "LabelsRepository",
    "LeaseRepository",
    "ModelRepository",
    "MonitoringRepository",
    "PipelineRepository",
    "ReviewRepository",
    "RolloutRepository",
    "RunRepository",
    "ScalingRepository",
    "TuningJobRepository",
    "WebhookOutboxRepository",
    "WorkforceRepository",
]
