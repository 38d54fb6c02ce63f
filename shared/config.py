"""Settings shared by the API and the worker, read from `BNLAB_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".data")


class Settings(BaseSettings):
    """Everything configurable; with no environment set, the embedded single-machine default."""

    model_config = SettingsConfigDict(env_prefix="BNLAB_", frozen=True)

    # Where local state lives in the embedded default: SQLite file, broker folders, data sets.
    data_dir: Path = DEFAULT_DATA_DIR
    # Empty means the embedded default under data_dir (SQLite in WAL mode).
    database_url: str = ""
    # Empty means kombu's filesystem transport under data_dir: no server to run.
    broker_url: str = ""
    # Extra folder searched for data sets before any download (mnist/, cifar10/ inside it).
    datasets_dir: Path | None = None
    # Try the public mirrors for data sets that are missing locally.
    allow_download: bool = True

    # Above the longest experiment, so Redis never redelivers a task that is still training.
    visibility_timeout_s: int = 6 * 3600
    # A running experiment whose heartbeat is older than this is presumed dead.
    heartbeat_stale_s: float = 60.0
    heartbeat_every_s: float = 5.0
    # The reaper looks for lost experiments this often (in every worker's heartbeat thread).
    reap_every_s: float = 15.0
    # A queued experiment not claimed this long after its task was sent is sent again
    # (then after twice as long, and so on): its broker message may have been lost.
    requeue_after_s: float = 60.0
    # An experiment whose worker is lost this many times (killed mid-run, say out of memory)
    # fails with a readable error instead of taking down one worker after another.
    max_worker_losses: int = 3
    # Metrics and histograms are written at most this often (and at the end).
    flush_every_s: float = 1.0
    # Intra-op threads of a CPU worker; 0 keeps torch's default (one per core). Small nets on a
    # shared machine train faster on one thread than on threads that wait for each other.
    torch_threads: int = 0
    # A resumable checkpoint is stored at most this often (and whenever training stops early).
    checkpoint_every_s: float = 10.0
    # Seeds one worker trains as a unit (a seed group); an experiment's groups spread over
    # every free worker. 1: each seed on a worker of its own.
    seeds_per_group: int = Field(default=1, ge=1)

    # Limits on what one spec may ask for (issue: nothing unreasonably large).
    max_parameters: int = 20_000_000
    max_total_steps: int = 2_000_000
    max_probe_histograms: int = 1_000_000
    max_body_bytes: int = 1024 * 1024

    # Bearer tokens on every route but the probes and the docs. None (unset): off on the embedded
    # default, which serves one machine on 127.0.0.1, and on as soon as a server is configured.
    auth: bool | None = None

    @field_validator("auth", mode="before")
    @classmethod
    def _empty_auth_is_default(cls, value: object) -> object:
        # `BNLAB_AUTH=` (set but empty) means the default, not an error.
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bnlab.sqlite3').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        """The configured broker URL, or kombu's serverless filesystem transport."""
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        """Folder the filesystem transport exchanges messages through."""
        return (self.data_dir / "broker").resolve()

    @property
    def is_embedded(self) -> bool:
        """True when running on SQLite and the filesystem broker, no servers at all."""
        return not self.database_url and not self.broker_url

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need a token: BNLAB_AUTH if set, else on unless embedded."""
        return self.auth if self.auth is not None else not self.is_embedded


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests clear this cache to change them."""
    return Settings()
