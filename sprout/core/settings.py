"""All configuration, read from the environment and `.env` (names as in DESIGN.md §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    model: str = Field("gpt-4.1-mini", validation_alias=_env("SPROUT_MODEL"))
    model_timeout_s: float = Field(30.0, validation_alias=_env("SPROUT_MODEL_TIMEOUT_S"))
    model_retries: int = Field(2, validation_alias=_env("SPROUT_MODEL_RETRIES"))
    # What users ask is checked with this moderation model first; blank turns the check off.
    moderation_model: str | None = Field(
        "omni-moderation-latest", validation_alias=_env("SPROUT_MODERATION_MODEL")
    )
    # Voice notes are transcribed with this model on the same server; blank turns it off.
    transcribe_model: str | None = Field(
        "whisper-1", validation_alias=_env("SPROUT_TRANSCRIBE_MODEL")
    )

    twilio_account_sid: str | None = Field(None, validation_alias=_env("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: SecretStr | None = Field(None, validation_alias=_env("TWILIO_AUTH_TOKEN"))
    twilio_whatsapp_from: str | None = Field(None, validation_alias=_env("TWILIO_WHATSAPP_FROM"))
    twilio_api_base_url: str = Field(
        "https://api.twilio.com", validation_alias=_env("TWILIO_API_BASE_URL")
    )
    public_url: str | None = Field(None, validation_alias=_env("SPROUT_PUBLIC_URL"))

    telegram_bot_token: SecretStr | None = Field(None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot", validation_alias=_env("TELEGRAM_API_BASE_URL")
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("TELEGRAM_WEBHOOK_SECRET")
    )

    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    data_dir: Path = Field(Path("./data"), validation_alias=_env("SPROUT_DATA_DIR"))
    prompts_dir: Path = Field(DEFAULT_PROMPTS_DIR, validation_alias=_env("SPROUT_PROMPTS_DIR"))
    # Where the safeguarding help numbers come from: prompts/regions/<region>.toml.
    region: str = Field("uk", validation_alias=_env("SPROUT_REGION"))
    # The experiments file (README "Running an experiment"); unset: no experiments.
    experiments_file: Path | None = Field(None, validation_alias=_env("SPROUT_EXPERIMENTS"))
    port: int = Field(5000, validation_alias=_env("PORT"))

    hold_after_s: float = Field(5.0, validation_alias=_env("SPROUT_HOLD_AFTER_S"))
    # "Activities <topic>" on WhatsApp and Telegram: one idea at a time, or the whole list
    # (the web page always shows the list).
    activity_style: Literal["one", "list"] = Field(
        "one", validation_alias=_env("SPROUT_ACTIVITY_STYLE")
    )
    # "typing…" while an answer is written (WhatsApp: Twilio's typing indicator, the hold text
    # only when it fails; Telegram: the chat action, kept alive until the first text).
    typing_indicator: bool = Field(True, validation_alias=_env("SPROUT_TYPING_INDICATOR"))
    max_input_chars: int = Field(2000, validation_alias=_env("SPROUT_MAX_INPUT_CHARS"))
    # The most WhatsApp messages one answer takes; past it the rest is offered ("write more").
    max_messages: int = Field(4, ge=1, validation_alias=_env("SPROUT_MAX_MESSAGES"))
    history_tokens: int = Field(3000, validation_alias=_env("SPROUT_HISTORY_TOKENS"))
    rate_limit: str = Field("10/minute", validation_alias=_env("SPROUT_RATE_LIMIT"))
    log_level: str = Field("INFO", validation_alias=_env("SPROUT_LOG_LEVEL"))
    # With Redis: how long a worker's claim on a user's job lasts unless renewed (a dead
    # worker's job goes to another worker after this), and how often workers look for
    # accepted messages that no queue entry covers.
    job_lease_s: float = Field(30.0, gt=0, validation_alias=_env("SPROUT_JOB_LEASE_S"))
    sweep_s: float = Field(30.0, gt=0, validation_alias=_env("SPROUT_SWEEP_S"))
    # How often due regular ideas are looked for (serve without Redis; workers with it).
    nudge_every_s: float = Field(30.0, gt=0, validation_alias=_env("SPROUT_NUDGE_EVERY_S"))
    # The approved WhatsApp template (a Content SID, HX…) sent for a nudge due outside the
    # 24-hour window; without it such nudges are skipped and counted.
    nudge_template_sid: str | None = Field(None, validation_alias=_env("SPROUT_NUDGE_TEMPLATE_SID"))
    # After an activity on WhatsApp or Telegram, one check-in about it the next morning;
    # outside WhatsApp's window only as this approved template ({{1}}: the activity's name).
    checkins: bool = Field(True, validation_alias=_env("SPROUT_CHECKINS"))
    checkin_template_sid: str | None = Field(
        None, validation_alias=_env("SPROUT_CHECKIN_TEMPLATE_SID")
    )
    # On SIGTERM/SIGINT, how long answers in flight get to finish before they are cut off
    # (they resume after restart): under the 30 s Heroku allows before it kills the process.
    shutdown_grace_s: float = Field(20.0, ge=0, validation_alias=_env("SPROUT_SHUTDOWN_GRACE_S"))
    # Operators' webhook for severe safety events (a JSON POST, HMAC-signed with the secret),
    # and how soon a failed delivery is tried again (doubling each time, at most an hour).
    safeguarding_webhook_url: str | None = Field(
        None, validation_alias=_env("SPROUT_SAFEGUARDING_WEBHOOK_URL")
    )
    safeguarding_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("SPROUT_SAFEGUARDING_WEBHOOK_SECRET")
    )
    safeguarding_webhook_retry_s: float = Field(
        30.0, gt=0, validation_alias=_env("SPROUT_SAFEGUARDING_WEBHOOK_RETRY_S")
    )

    @field_validator(
        "openai_api_key",
        "openai_base_url",
        "transcribe_model",
        "moderation_model",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_whatsapp_from",
        "public_url",
        "telegram_bot_token",
        "telegram_webhook_secret",
        "database_url",
        "redis_url",
        "safeguarding_webhook_url",
        "safeguarding_webhook_secret",
        "nudge_template_sid",
        "checkin_template_sid",
        "experiments_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Settings:
        # An unsigned alert could not be told from a forged one: refuse to start without it.
        if self.safeguarding_webhook_url and self.safeguarding_webhook_secret is None:
            raise ValueError(
                "SPROUT_SAFEGUARDING_WEBHOOK_URL needs SPROUT_SAFEGUARDING_WEBHOOK_SECRET"
            )
        return self

    @property
    def demo_mode(self) -> bool:
        """No model configured at all: use the built-in scripted model."""
        return self.openai_api_key is None and self.openai_base_url is None

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'sprout.db'}"
        # Heroku hands out postgres:// URLs; SQLAlchemy wants an explicit async driver.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        return url

    @property
    def redis_connection_url(self) -> str | None:
        url = self.redis_url
        # Heroku Redis serves TLS with a self-signed certificate (its documented client setting).
        if url and url.startswith("rediss://") and "ssl_cert_reqs" not in url:
            url += ("&" if "?" in url else "?") + "ssl_cert_reqs=none"
        return url

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def whatsapp_credentials(self) -> tuple[str, str] | None:
        """Twilio's account SID and auth token, when WhatsApp is on."""
        if not (self.twilio_account_sid and self.twilio_auth_token):
            return None
        return self.twilio_account_sid, self.twilio_auth_token.get_secret_value()

    @property
    def pseudonym_key(self) -> bytes | None:
        """What users' pseudonyms are keyed with: a secret every process of one deployment has."""
        secret = self.twilio_auth_token or self.telegram_bot_token
        return secret.get_secret_value().encode() if secret else None

    @property
    def status_callback_url(self) -> str | None:
        """Where Twilio reports what became of each message sent (needs the public URL)."""
        return f"{self.public_url.rstrip('/')}/whatsapp/status" if self.public_url else None
