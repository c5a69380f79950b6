"""Shared constants for the provider tests (importable: this folder is on sys.path)."""

from collections.abc import Callable

from workers.providers.base import Provider

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "riskcast-test-auth-token"
FROM_NUMBER = "+15005550006"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
LAO_MOBILE = "+8562055512345"

ProviderFactory = Callable[..., Provider]
