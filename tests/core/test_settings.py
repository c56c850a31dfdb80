"""Settings refuse what cannot be safe outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings


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
