"""Typed settings, validated once: environment (prefix ``CLOSEDLOOP_``) over an optional YAML file.

The YAML file is named by ``CLOSEDLOOP_CONFIG_FILE`` (keys are the setting names in lower case).
:func:`check_settings` collects *every* problem at once instead of stopping at the first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from ruamel.yaml import YAML

DEFAULT_DATABASE_URL = "sqlite:///./var/closedloop.db"
HUBSPOT_PUBLIC_API = "https://api.hubapi.com"


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads settings from the YAML file named by ``CLOSEDLOOP_CONFIG_FILE``, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("CLOSEDLOOP_CONFIG_FILE")
        if not path:
            return {}
        data = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the settings file must hold a mapping of setting names to values")
        return {str(k).lower(): v for k, v in data.items()}


class Settings(BaseSettings):
    """Every setting Closedloop reads. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(env_prefix="CLOSEDLOOP_", extra="ignore", validate_default=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = Field(default=None, description="unset = embedded, in-process broker")
    mappings: Path = Path("mappings")
    ma: Literal["hubspot", "marketo"] = Field(
        default="hubspot", description="the marketing-automation connector"
    )
    sfa: Literal["salesforce"] = Field(default="salesforce", description="the sales-CRM connector")

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
    salesforce_api_version: str = "59.0"
    salesforce_api_share: float = Field(default=0.5, gt=0, le=1, description="share of the daily allocation")
    salesforce_org_id: str | None = None
    salesforce_outbound_secret: SecretStr | None = None

    public_base_url: str | None = None
    trust_forwarded_headers: bool = False
    poll_interval: float = Field(default=30.0, gt=0, description="seconds between polling cycles")
    poll_overlap: float = Field(default=120.0, ge=0, description="seconds re-read behind each watermark")
    batch_size: int = Field(default=200, gt=0, le=2000, description="people per sync task")
    broker_visibility_timeout: float = Field(
        default=600.0, gt=0, description="seconds until a dead worker's unacknowledged task is redelivered"
    )
    retry_max_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=0.5, ge=0)
    retry_max_seconds: float = Field(default=30.0, ge=0)
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    max_request_bytes: int = Field(default=1_048_576, gt=0)

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
    """Hide the password in a URL such as ``postgresql://user:pw@host/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


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
    if settings.redis_url is not None and not settings.redis_url.startswith(("redis://", "rediss://")):
        problems.append("CLOSEDLOOP_REDIS_URL: must start with redis:// or rediss://")
    return settings, problems


def load_settings() -> Settings:
    """Settings from the environment; raises ``SystemExit`` listing every problem."""
    settings, problems = check_settings()
    if problems or settings is None:
        raise SystemExit("invalid settings:\n  " + "\n  ".join(problems))
    return settings
