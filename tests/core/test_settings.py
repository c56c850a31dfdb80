"""Settings refuse what cannot be safe outside development, and make no secret public."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from core.settings import JWT_SECRET_FILE, WEBHOOK_SECRET_FILE, Settings


def test_default_secrets_are_refused_outside_development() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None, environment="production")  # type: ignore[call-arg]
    message = str(err.value)
    for name in ("QORGAU_JWT_SECRET", "QORGAU_WEBHOOK_SECRET", "QORGAU_VAPID_PRIVATE_KEY"):
        assert name in message
    with pytest.raises(ValidationError, match="QORGAU_JWT_SECRET"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            jwt_secret="short",
            webhook_secret="w" * 40,
            vapid_private_key="k",
        )
    ok = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        jwt_secret="j" * 40,
        webhook_secret="w" * 40,
        vapid_private_key="k",
    )
    assert ok.jwt_secret.get_secret_value() == "j" * 40
    assert "j" * 40 not in repr(ok)


# Published as the development key in the source of earlier versions.
OLD_PUBLISHED_KEY = "qorgau-development-secret-do-not-use-in-production"


def test_development_secrets_are_the_state_directorys_own(tmp_path: Path) -> None:
    """Unset, the JWT and webhook secrets are made at random on first use, one per state
    directory, kept with mode 0600, and shared by every process of that stack."""
    state = tmp_path / "stack"
    settings = Settings(_env_file=None, state_dir=state)  # type: ignore[call-arg]
    assert not state.exists()  # building (and printing) settings touches nothing
    assert "LocalSecret" in repr(settings)
    jwt = settings.jwt_secret.get_secret_value()
    webhook = settings.webhook_secret.get_secret_value()
    assert len(jwt) >= 32 and len(webhook) >= 32 and jwt != webhook
    assert OLD_PUBLISHED_KEY not in (jwt, webhook)
    for name, value in ((JWT_SECRET_FILE, jwt), (WEBHOOK_SECRET_FILE, webhook)):
        path = state / name
        assert path.read_text(encoding="ascii") == value
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Another process of the same stack (here: other settings) agrees; another stack does not.
    again = Settings(_env_file=None, state_dir=state)  # type: ignore[call-arg]
    assert again.jwt_secret.get_secret_value() == jwt
    other = Settings(_env_file=None, state_dir=tmp_path / "other")  # type: ignore[call-arg]
    assert other.jwt_secret.get_secret_value() != jwt
    # A configured secret wins, and nothing is made for it; an empty one counts as unset.
    mine = Settings(_env_file=None, state_dir=tmp_path / "mine", jwt_secret="m" * 40)  # type: ignore[call-arg]
    assert mine.jwt_secret.get_secret_value() == "m" * 40
    assert not (tmp_path / "mine" / JWT_SECRET_FILE).exists()
    blank = Settings(_env_file=None, state_dir=state, jwt_secret="")  # type: ignore[call-arg]
    assert blank.jwt_secret.get_secret_value() == jwt


def test_the_state_directory_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QORGAU_STATE_DIR", str(tmp_path / "env-stack"))
    secret = Settings(_env_file=None).jwt_secret.get_secret_value()  # type: ignore[call-arg]
    assert (tmp_path / "env-stack" / JWT_SECRET_FILE).read_text(encoding="ascii") == secret


def test_the_published_key_is_refused_everywhere(tmp_path: Path) -> None:
    for environment in ("development", "production"):
        with pytest.raises(ValidationError, match="QORGAU_JWT_SECRET: this key was published"):
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                environment=environment,
                state_dir=tmp_path,
                jwt_secret=OLD_PUBLISHED_KEY,
                webhook_secret="w" * 40,
                vapid_private_key="k",
            )
    with pytest.raises(ValidationError, match="QORGAU_WEBHOOK_SECRET"):
        Settings(_env_file=None, state_dir=tmp_path, webhook_secret=OLD_PUBLISHED_KEY)  # type: ignore[call-arg]


def test_production_never_makes_a_secret_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="QORGAU_JWT_SECRET: not set"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            state_dir=tmp_path,
            webhook_secret="w" * 40,
            vapid_private_key="k",
        )
    assert list(tmp_path.iterdir()) == []


def test_an_emptied_secret_file_is_refused_not_used(tmp_path: Path) -> None:
    """An empty key would let anyone sign tokens: a state file too short stops the start."""
    (tmp_path / JWT_SECRET_FILE).write_text("")
    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="holds no usable secret"):
        settings.jwt_secret.get_secret_value()
