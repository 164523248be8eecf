"""Settings: one typed object, read from ``LOOPWISE_*`` environment variables by the caller.

Nothing happens at import; :func:`Settings` is built by whoever needs it (the CLI, a test, an app
factory) and passed down.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ByteSize, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REVIEWS_URL = (
    "https://dlai-practical-data-science.s3.amazonaws.com/data/raw/womens_clothing_ecommerce_reviews.csv"
)
REVIEWS_SHA256 = "bd93cc515747ad1f87b8bc863c9e40da758509e6db6506a96d06976e61e36ee0"


class Settings(BaseSettings):
    """Where loopwise keeps its state, and where it fetches the course data from."""

    model_config = SettingsConfigDict(env_prefix="LOOPWISE_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".loopwise",
        description="Directory for the default SQLite database, artifacts and the data cache.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default: SQLite at $LOOPWISE_HOME/loopwise.db. "
        "For PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    artifact_root: Path | None = Field(
        default=None,
        description="Directory for data files, checkpoints and reports; default: $HOME/artifacts",
    )
    artifacts: str | None = Field(
        default=None,
        description="Where artifacts live: a directory (a shared mount for several hosts) or an fsspec URL "
        "such as s3://bucket/prefix (needs loopwise[s3]); default: LOOPWISE_ARTIFACT_ROOT",
    )
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict,
        description="The fsspec file system's options as a JSON object, for example "
        '{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}} for an S3-compatible server',
    )
    artifact_cache_dir: Path | None = Field(
        default=None,
        description="This host's cache of artifacts read from an object store; default: "
        "$LOOPWISE_HOME/artifact-cache",
    )
    artifact_cache_size: ByteSize = Field(
        default=ByteSize(10 * 1024**3),
        description="The most the artifact cache keeps (bytes, or 512MiB, 20GB, ...); least recently "
        "used artifacts go first",
    )
    cache_dir: Path | None = Field(
        default=None, description="Download cache for data sets; default: $LOOPWISE_HOME/cache"
    )
    reviews_url: str = Field(default=REVIEWS_URL, description="Where `data fetch reviews` downloads from.")
    reviews_sha256: str = Field(default=REVIEWS_SHA256, description="Expected sha256 of the reviews CSV.")
    forwarded_allow_ips: str = Field(
        default="",
        description="The proxies (comma-separated IPs or CIDRs) whose X-Forwarded-For/-Proto the server "
        "believes; none by default: the client is the socket's address.",
    )

    @field_validator("forwarded_allow_ips", mode="after")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value, "LOOPWISE_FORWARDED_ALLOW_IPS")
        return value

    @field_validator("home", "artifact_root", "artifact_cache_dir", "cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'loopwise.db'}"

    @property
    def resolved_artifact_root(self) -> Path:
        return self.artifact_root or self.home / "artifacts"

    @property
    def resolved_artifacts(self) -> str:
        """The artifact store's location: LOOPWISE_ARTIFACTS, else the artifact root directory."""
        return self.artifacts or str(self.resolved_artifact_root)

    @property
    def resolved_artifact_cache_dir(self) -> Path:
        return self.artifact_cache_dir or self.home / "artifact-cache"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.home / "cache"


#: the largest request body the server accepts (SageMaker's real-time endpoints take 6 MB)
MAX_BODY_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How ``loopwise server`` runs: built once by its caller (``loopwise server``, a test, a demo) and
    handed to :func:`loopwise.app.create_app`, which keeps it in ``app.state.settings``.

    ``forwarded_allow_ips``: the proxies (IPs, CIDRs; :func:`parse_networks`) whose ``X-Forwarded-For``
    and ``-Proto`` are believed: from one of them, the client is the right-most address of
    X-Forwarded-For that is not a proxy (uvicorn's ``ProxyHeadersMiddleware``); from anyone else, and by
    default, the socket's address. ``freeze_heap``: the process is the server (``loopwise server``), so
    what start-up made is moved out of the garbage collector's sight; never for a process that only hosts
    the app. ``watch_s``: how often the data plane reads the endpoints' configurations (None: its
    default). The ``*_interval_s``: how often the background duties run; ``credentials_ttl_s``: how long
    a session or API token looked up in the database is kept (:class:`loopwise.api.auth.Credentials`).
    """

    max_body_bytes: int = MAX_BODY_BYTES
    watch_s: float | None = None
    monitor_interval_s: float = 5.0
    credentials_ttl_s: float = 2.0
    auto_label_interval_s: float = 2.0
    review_interval_s: float = 1.0
    pipeline_interval_s: float = 10.0
    autoscale_interval_s: float = 0.5
    freeze_heap: bool = False
    forwarded_allow_ips: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, forwarded_allow_ips: str | None = None, freeze_heap: bool = False
    ) -> ServerSettings:
        """The server's settings from ``settings`` (``LOOPWISE_FORWARDED_ALLOW_IPS``), the command line's
        ``forwarded_allow_ips`` taking precedence; :class:`ValueError` names a bad entry."""
        chosen = settings.forwarded_allow_ips if forwarded_allow_ips is None else forwarded_allow_ips
        return cls(forwarded_allow_ips=parse_networks(chosen), freeze_heap=freeze_heap)


def parse_networks(value: str, field: str = "--forwarded-allow-ips") -> tuple[str, ...]:
    """The IPs and CIDRs of a comma-separated list (empty: none), normalised; :class:`ValueError` names
    ``field`` and the entry that is neither."""
    found = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"{field}: {entry!r} is not an IP address or a CIDR (such as 10.0.0.0/8); "
                "list the proxies in front of the server, comma-separated"
            ) from None
        found.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return tuple(found)
