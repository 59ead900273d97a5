"""Provider credentials: from the environment (or, in flows, Prefect Secret blocks)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, SecretStr

ENV_ELECTRICITYMAPS_TOKEN = "ELECTRICITYMAPS_API_TOKEN"
ENV_WATTTIME_USERNAME = "WATTTIME_USERNAME"
ENV_WATTTIME_PASSWORD = "WATTTIME_PASSWORD"


class Credentials(BaseModel):
    """Secrets are `SecretStr`: they print as '**********' in reprs, logs and dumps."""

    electricitymaps_token: SecretStr | None = None
    watttime_username: str | None = None
    watttime_password: SecretStr | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env

        def secret(name: str) -> SecretStr | None:
            return SecretStr(env[name]) if env.get(name) else None

        return cls(
            electricitymaps_token=secret(ENV_ELECTRICITYMAPS_TOKEN),
            watttime_username=env.get(ENV_WATTTIME_USERNAME) or None,
            watttime_password=secret(ENV_WATTTIME_PASSWORD),
        )

    def secrets(self) -> list[str]:
        """Every secret value, for scrubbing text that might echo one back."""
        out = []
        for value in (self.electricitymaps_token, self.watttime_password):
            if value is not None:
                out.append(value.get_secret_value())
        return out
