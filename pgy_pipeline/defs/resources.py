"""Dagster resources: the Just One API client and the warehouse, configured from the PGY_* environment.

Both read the same environment variables the CLI does (`PGY_API_TOKEN`, `PGY_API_BASE_URL`,
`PGY_TREND_ENDPOINT`, `PGY_DATABASE_URL`, `PGY_HOME`), and every setting can be overridden as resource
config in the launchpad. The token is wired through `EnvVar`, so Dagster shows the variable's name in
the UI and run config, never its value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource, EnvVar, Failure
from pydantic import Field
from sqlalchemy import Engine

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.api.concurrency import DEFAULT_MAX, DEFAULT_MIN, DEFAULT_START
from pgy_pipeline.config import (
    ConfigError,
    Secret,
    Settings,
    parse_endpoint,
    require_token,
    resolve_base_url,
)
from pgy_pipeline.model import Endpoint


class TrendApiResource(ConfigurableResource):  # type: ignore[type-arg]
    """The Just One API: token, base URL, endpoint variant, concurrency, rate limit and retries."""

    token: str | None = Field(default=None, description="Just One API token; set PGY_API_TOKEN.")
    base_url: str | None = Field(
        default=None, description="Base URL or alias prod-global / prod-cn (default: PGY_API_BASE_URL or prod-global)."
    )
    endpoint: str | None = Field(
        default=None, description="legacy_v1 or current (default: PGY_TREND_ENDPOINT or legacy_v1)."
    )
    concurrency: int = Field(
        default=DEFAULT_START,
        description="Calls in flight at the start; raised while answers are clean, cut on rate-limit answers "
        "(302 / HTTP 429), always within min_concurrency..max_concurrency.",
    )
    min_concurrency: int = Field(default=DEFAULT_MIN, description="Fewest calls in flight after rate-limit answers.")
    max_concurrency: int = Field(
        default=DEFAULT_MAX, description="Most calls in flight; set min = max = concurrency for a fixed level."
    )
    rate_limit_per_s: float | None = Field(default=None, description="Client-wide requests per second (none = no cap).")
    max_attempts: int = Field(default=4, description="Attempts per call for retryable failures (301, 500, 5xx, …).")
    backoff_base_s: float = Field(default=0.5, description="First retry delay; doubles per attempt, with jitter.")
    backoff_max_s: float = Field(default=30.0, description="Longest delay between attempts.")
    read_timeout_s: float = Field(default=60.0, description="Read timeout; at least 60 s (a timeout may double-bill).")
    allow_plaintext_http: bool | None = Field(
        default=None,
        description="Send the token over plain http:// to a non-loopback host (prod-cn) "
        "(default: PGY_ALLOW_PLAINTEXT_HTTP, else refused).",
    )

    def endpoint_variant(self) -> Endpoint:
        """The configured endpoint, falling back to the environment; a bad value fails with the fix named."""
        try:
            return parse_endpoint(self.endpoint) if self.endpoint else Settings.from_env().trend_endpoint
        except ConfigError as exc:
            raise Failure(description=str(exc)) from None

    def make_client(self) -> TrendClient:
        """A fresh client for one run (its stop state is per run); fails the run in one sentence without a token."""
        try:
            settings = Settings.from_env()
            token = require_token(Secret(self.token) if self.token else settings.api_token)
            base_url = resolve_base_url(self.base_url) if self.base_url else settings.api_base_url
            return TrendClient(
                base_url,
                token,
                self.endpoint_variant(),
                concurrency=self.concurrency,
                min_concurrency=self.min_concurrency,
                max_concurrency=self.max_concurrency,
                rate_limit_per_s=self.rate_limit_per_s,
                max_attempts=self.max_attempts,
                backoff_base_s=self.backoff_base_s,
                backoff_max_s=self.backoff_max_s,
                read_timeout_s=self.read_timeout_s,
                allow_plaintext_http=self.allow_plaintext_http,
            )
        except ConfigError as exc:
            raise Failure(description=str(exc)) from None


class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """The Postgres warehouse: a URL, or `embedded` (the embedded Postgres under `home`).

    With no URL at all, an embedded warehouse is used only where one was asked for (a `home` here, PGY_HOME)
    or already exists, and never on a Dagster instance whose own storage is Postgres (production): there an
    unset PGY_DATABASE_URL fails the run in one sentence rather than loading into a database that vanishes.
    """

    database_url: str | None = Field(
        default=None, description="Postgres URL, or 'embedded' (default: PGY_DATABASE_URL)."
    )
    home: str | None = Field(default=None, description="Embedded Postgres location (default: PGY_HOME or ./.pgy).")

    def _target(self) -> tuple[str | None, Path, bool]:
        """(database URL, home, whether an embedded server was asked for) from this config over the settings."""
        settings = Settings.from_env()
        asked = bool(self.home) or settings.is_set("PGY_HOME")
        return self.database_url or settings.database_url, Path(self.home) if self.home else settings.home, asked

    def _production_instance(self) -> bool:
        """Whether the Dagster instance running this keeps its run storage in Postgres."""
        context = self._state__internal__.resource_context
        instance = context.instance if context is not None else None
        return instance is not None and "postgres" in type(instance.run_storage).__module__

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        """An engine for the duration of one step, disposed afterwards (no pool outlives a run)."""
        from pgy_pipeline.warehouse.engine import make_engine

        database_url, home, asked = self._target()
        engine = make_engine(database_url, home, embedded_ok=asked, production=self._production_instance())
        try:
            yield engine
        finally:
            engine.dispose()

    def where(self, engine: Engine) -> str:
        """The warehouse `engine` writes to, for metadata: database and host, or `embedded at PATH`; no password."""
        from pgy_pipeline.warehouse.engine import describe_warehouse

        database_url, home, _ = self._target()
        return describe_warehouse(database_url, home, engine)


def default_resources() -> dict[str, object]:
    """The resources `defs` binds, configured from the environment where the definitions load.

    The non-secret settings (base URL, endpoint, embedded Postgres home) are resolved now, so the launchpad
    shows the values runs will use rather than `None`. The token, and the database URL (it may carry a
    password), stay `EnvVar`s: the UI shows the variable's name, never its value.

    An `EnvVar` is bound only when its variable is set: Dagster resolves an unset `EnvVar` as a config
    error for every run and sensor touching the resource (even those that need no token), whereas a
    missing token should fail just the materialisation, in one sentence that says how to set it
    (`require_token`). A malformed setting is left unresolved for the same reason: the run that needs it
    fails with the sentence naming the variable, instead of the whole code location failing to load.
    """
    settings = Settings.from_env()
    token = EnvVar("PGY_API_TOKEN") if settings.is_set("PGY_API_TOKEN") else None
    database_url = EnvVar("PGY_DATABASE_URL") if settings.is_set("PGY_DATABASE_URL") else None
    # The home only when PGY_HOME is set: a home in config asks for an embedded server there.
    home = str(settings.home) if settings.is_set("PGY_HOME") else None
    try:
        api = TrendApiResource(token=token, base_url=settings.api_base_url, endpoint=settings.trend_endpoint.value)
    except ConfigError:
        api = TrendApiResource(token=token)
    return {"trend_api": api, "warehouse": WarehouseResource(database_url=database_url, home=home)}
