"""Shared constants for the provider tests (importable: this folder is on sys.path)."""

import subprocess
import time
from collections.abc import Callable

import requests

from workers.providers.base import Provider

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "riskcast-test-auth-token"
FROM_NUMBER = "+15005550006"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
LAO_MOBILE = "+8562055512345"

ProviderFactory = Callable[..., Provider]


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Wait for a simulator process to answer ``/healthz``; raise if it exits or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.05)
