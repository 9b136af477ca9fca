import pytest

from sprout.core.settings import Settings


def test_names_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_MODEL", "small-model")
    monkeypatch.setenv("SPROUT_HOLD_AFTER_S", "2.5")
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")
    settings = Settings(_env_file=None)
    assert settings.model == "small-model"
    assert settings.hold_after_s == 2.5
    assert settings.twilio_api_base_url == "http://127.0.0.1:9"


def test_heroku_postgres_urls_get_the_async_driver() -> None:
    settings = Settings(_env_file=None, DATABASE_URL="postgres://u:p@db:5432/sprout")
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/sprout"


def test_demo_mode_only_without_any_model_configured() -> None:
    assert Settings(_env_file=None).demo_mode
    assert not Settings(_env_file=None, OPENAI_BASE_URL="http://127.0.0.1:11434/v1").demo_mode
    assert not Settings(_env_file=None, OPENAI_API_KEY="sk-test").demo_mode


def test_secrets_never_show_in_reprs() -> None:
    settings = Settings(_env_file=None, OPENAI_API_KEY="sk-secret", TWILIO_AUTH_TOKEN="tok-secret")
    assert "sk-secret" not in repr(settings)
    assert "tok-secret" not in str(settings)


def test_heroku_redis_tls_urls_accept_its_self_signed_certificate() -> None:
    tls = Settings(redis_url="rediss://:secret@example.com:6380")
    assert tls.redis_connection_url == "rediss://:secret@example.com:6380?ssl_cert_reqs=none"
    plain = Settings(redis_url="redis://127.0.0.1:6379/0")
    assert plain.redis_connection_url == "redis://127.0.0.1:6379/0"
    assert Settings(redis_url="").redis_connection_url is None


def test_the_operators_webhook_is_never_unsigned() -> None:
    url = "https://operators.example.org/alerts"
    with pytest.raises(ValueError, match="SPROUT_SAFEGUARDING_WEBHOOK_SECRET"):
        Settings(_env_file=None, SPROUT_SAFEGUARDING_WEBHOOK_URL=url)
    signed = Settings(
        _env_file=None,
        SPROUT_SAFEGUARDING_WEBHOOK_URL=url,
        SPROUT_SAFEGUARDING_WEBHOOK_SECRET="s3cret-value",
    )
    assert signed.safeguarding_webhook_url == url and "s3cret" not in repr(signed)
    assert (
        Settings(_env_file=None, SPROUT_SAFEGUARDING_WEBHOOK_URL="").safeguarding_webhook_url
        is None
    )


def test_the_experiments_file_is_a_path_and_blank_means_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPROUT_EXPERIMENTS", raising=False)
    assert Settings(_env_file=None).experiments_file is None
    monkeypatch.setenv("SPROUT_EXPERIMENTS", "")
    assert Settings(_env_file=None).experiments_file is None
    monkeypatch.setenv("SPROUT_EXPERIMENTS", "studies/experiments.toml")
    assert str(Settings(_env_file=None).experiments_file) == "studies/experiments.toml"
