"""Typed settings, validated once: environment (prefix ``CLOSEDLOOP_``) over an optional YAML file.

The YAML file is named by ``CLOSEDLOOP_CONFIG_FILE`` (keys are the setting names in lower case).
:func:`check_settings` collects *every* problem at once instead of stopping at the first.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

DEFAULT_DATABASE_URL = "sqlite:///./var/closedloop.db"
HUBSPOT_PUBLIC_API = "https://api.hubapi.com"
ENV_PREFIX = "CLOSEDLOOP_"
# CLOSEDLOOP_* variables that are read but are not settings (the test suite's own use CLOSEDLOOP_TEST_).
NON_SETTING_VARIABLES = frozenset({"CLOSEDLOOP_CONFIG_FILE"})
RESERVED_PREFIXES = ("CLOSEDLOOP_TEST_",)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_QUOTED = re.compile(r"'[^']{3,}'|\"[^\"]{3,}\"")


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads settings from the YAML file named by ``CLOSEDLOOP_CONFIG_FILE``, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("CLOSEDLOOP_CONFIG_FILE")
        if not path:
            return {}
        try:
            data = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8")) or {}
        except YAMLError as exc:
            raise ValueError(f"{path}: {yaml_problem(exc)}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the settings file must hold a mapping of setting names to values")
        return {str(k).lower(): v for k, v in data.items()}


class Settings(BaseSettings):
    """Every setting Closedloop reads. Secrets are ``SecretStr`` so they never print."""

    # allow_inf_nan=False: an infinite interval or timeout passes ``gt=0`` and then crashes a sleep or a timer.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, allow_inf_nan=False
    )

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = Field(default=None, description="unset = embedded, in-process broker")
    mappings: Path = Path("mappings")
    ma: Literal["hubspot", "marketo"] = Field(
        default="hubspot", description="the marketing-automation connector"
    )
    sfa: Literal["salesforce", "hubspot"] = Field(
        default="salesforce", description="the sales-CRM connector (hubspot: deals in a HubSpot portal)"
    )

    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = HUBSPOT_PUBLIC_API
    hubspot_webhook_secret: SecretStr | None = None
    hubspot_signature_version: Literal["v1", "v2", "v3"] = "v3"
    hubspot_window_limit: int = Field(default=190, gt=0, description="calls per 10 s window")
    hubspot_daily_limit: int = Field(default=500_000, gt=0)
    hubspot_search_per_second: int = Field(
        default=5, gt=0, description="HubSpot's search requests per second"
    )

    marketo_base_url: str | None = Field(
        default=None, description="REST base, https://<munchkin>.mktorest.com"
    )
    marketo_client_id: str | None = None
    marketo_client_secret: SecretStr | None = None
    marketo_munchkin_id: str | None = None
    marketo_window_limit: int = Field(default=100, gt=0, description="calls per 20 s window")
    marketo_window_seconds: int = Field(default=20, gt=0)
    marketo_concurrency: int = Field(default=10, gt=0, description="calls in flight at once")
    marketo_daily_limit: int = Field(default=50_000, gt=0, description="the subscription's daily quota")
    marketo_daily_share: float = Field(default=1.0, gt=0, le=1, description="share of the daily quota")
    marketo_webhook_token: SecretStr | None = None

    salesforce_instance_url: str | None = None
    salesforce_session_id: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_domain: str | None = Field(default=None, description="login, test or a My Domain prefix")
    salesforce_consumer_key: str | None = None
    salesforce_private_key_file: Path | None = None
    salesforce_ca_bundle: Path | None = None
    salesforce_api_version: str = Field(default="59.0", pattern=r"^[1-9][0-9]*\.0$", description="e.g. 59.0")
    salesforce_api_share: float = Field(default=0.5, gt=0, le=1, description="share of the daily allocation")
    salesforce_org_id: str | None = None
    salesforce_outbound_secret: SecretStr | None = None

    public_base_url: str | None = None
    trust_forwarded_headers: bool = False
    poll_interval: float = Field(default=30.0, gt=0, description="seconds between polling cycles")
    poll_overlap: float = Field(default=120.0, ge=0, description="seconds re-read behind each watermark")
    batch_size: int = Field(default=200, gt=0, le=2000, description="people per sync task")
    inbox_coalesce_seconds: float = Field(
        default=0.4, ge=0, le=10, description="webhook events arriving this close together sync as one batch"
    )
    broker_visibility_timeout: float = Field(
        default=600.0, gt=0, description="seconds until a dead worker's unacknowledged task is redelivered"
    )
    retry_max_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=0.5, ge=0)
    retry_max_seconds: float = Field(default=30.0, ge=0)
    language: Literal["en", "ja"] = Field(default="en", description="CLI tables, HTML report, dashboard")
    dashboard_token: SecretStr | None = Field(default=None, description="turns /dashboard on")
    dashboard_user: str | None = Field(default=None, description="basic auth for /dashboard, with password")
    dashboard_password: SecretStr | None = None
    dashboard_refresh_seconds: int = Field(default=60, ge=5, description="the dashboard reloads itself")
    sla_webhook_url: SecretStr | None = Field(
        default=None, description="incoming webhook (Slack or Teams) for SLAs with 'notify'; a secret"
    )
    sla_webhook_timeout: float = Field(
        default=3.0, gt=0, le=30, description="seconds one breach notification may take"
    )
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    max_request_bytes: int = Field(default=1_048_576, gt=0)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("hubspot_base_url", "marketo_base_url", "salesforce_instance_url", "public_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("sla_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must start with https:// (the value is not shown: it is a secret)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls), file_secret_settings)

    @property
    def dashboard_enabled(self) -> bool:
        """The dashboard is served only when a credential for it is configured."""
        token = self.dashboard_token.get_secret_value() if self.dashboard_token else ""
        password = self.dashboard_password.get_secret_value() if self.dashboard_password else ""
        return bool(token or (self.dashboard_user and password))

    @property
    def salesforce_auth_mode(self) -> str | None:
        """Which Salesforce credentials are configured: session, password, jwt or None."""
        if self.salesforce_instance_url and self.salesforce_session_id:
            return "session"
        if self.salesforce_username and self.salesforce_consumer_key and self.salesforce_private_key_file:
            return "jwt"
        if self.salesforce_username and self.salesforce_password:
            return "password"
        return None

    def masked(self) -> dict[str, Any]:
        """Effective settings with every secret replaced by ``***``."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "***" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        out["database_url"] = mask_url(self.database_url)
        if self.redis_url:
            out["redis_url"] = mask_url(self.redis_url)
        return out


def mask_url(url: str) -> str:
    """Hide the passwords in a URL: ``postgresql://user:pw@host/db`` and ``?password=pw`` alike."""
    from sync.logs import redact_text

    return redact_text(url)


def yaml_problem(exc: YAMLError) -> str:
    """Where and what a YAML syntax error is, without quoting the file (its lines may hold a token)."""
    if not isinstance(exc, MarkedYAMLError):
        return "not valid YAML"
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
    # Problems quote what they found ('found duplicate key "x" with value "..."'): keep only the shape.
    problem = _QUOTED.sub("'…'", " ".join(p for p in (exc.context, exc.problem) if p))
    return (
        f"YAML syntax error at {where}: {problem or 'invalid'} (the line is not shown: it may hold a secret)"
    )


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Warnings for ``CLOSEDLOOP_*`` variables that are no setting, with a "did you mean" suggestion."""
    environ = dict(os.environ) if environ is None else environ
    known = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in NON_SETTING_VARIABLES:
            continue
        if upper.startswith(RESERVED_PREFIXES):
            continue
        # compare without the shared prefix, which would make any two names look alike
        names = [n.removeprefix(ENV_PREFIX) for n in (*known, *NON_SETTING_VARIABLES)]
        guess = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), names, n=1, cutoff=0.75)
        hint = (
            f"; did you mean {ENV_PREFIX}{guess[0]}?"
            if guess
            else "; see `closedloop config check` for the settings"
        )
        warnings.append(f"{name} is not a Closedloop setting and is ignored{hint}")
    return warnings


def check_settings(settings: Settings | None = None) -> tuple[Settings | None, list[str]]:
    """Validate settings and cross-field rules; return (settings or None, every problem found)."""
    problems: list[str] = []
    if settings is None:
        try:
            settings = Settings()
        except ValidationError as exc:
            for err in exc.errors():
                name = "CLOSEDLOOP_" + ".".join(str(p) for p in err["loc"]).upper()
                problems.append(f"{name}: {err['msg']}")
            return None, problems
        except (OSError, ValueError) as exc:
            return None, [f"CLOSEDLOOP_CONFIG_FILE: {exc}"]
    if settings.salesforce_auth_mode is None and any(
        [settings.salesforce_instance_url, settings.salesforce_username, settings.salesforce_session_id]
    ):
        problems.append(
            "CLOSEDLOOP_SALESFORCE_*: incomplete credentials: give INSTANCE_URL + SESSION_ID, "
            "or USERNAME + PASSWORD (+ SECURITY_TOKEN), or USERNAME + CONSUMER_KEY + PRIVATE_KEY_FILE"
        )
    key_file = settings.salesforce_private_key_file
    if key_file is not None and not key_file.is_file():
        problems.append(f"CLOSEDLOOP_SALESFORCE_PRIVATE_KEY_FILE: no such file: {key_file}")
    if settings.salesforce_ca_bundle is not None and not settings.salesforce_ca_bundle.is_file():
        problems.append(f"CLOSEDLOOP_SALESFORCE_CA_BUNDLE: no such file: {settings.salesforce_ca_bundle}")
    if settings.ma == "marketo" and not (
        settings.marketo_base_url and settings.marketo_client_id and settings.marketo_client_secret
    ):
        problems.append(
            "CLOSEDLOOP_MARKETO_*: CLOSEDLOOP_MA=marketo needs BASE_URL, CLIENT_ID and CLIENT_SECRET"
        )
    if not settings.mappings.exists():
        problems.append(f"CLOSEDLOOP_MAPPINGS: no such file or directory: {settings.mappings}")
    if bool(settings.dashboard_user) != bool(
        settings.dashboard_password and settings.dashboard_password.get_secret_value()
    ):
        problems.append("CLOSEDLOOP_DASHBOARD_USER / _PASSWORD: give both for basic auth, or neither")
    if settings.redis_url is not None and not settings.redis_url.startswith(("redis://", "rediss://")):
        problems.append("CLOSEDLOOP_REDIS_URL: must start with redis:// or rediss://")
    return settings, problems


def load_settings() -> Settings:
    """Settings from the environment; raises ``SystemExit`` listing every problem."""
    settings, problems = check_settings()
    if problems or settings is None:
        raise SystemExit("invalid settings:\n  " + "\n  ".join(problems))
    return settings
