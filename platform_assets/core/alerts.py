"""JSON alerts to a webhook (the seed's Logic App), with a timeout and retries.

Retries happen on connection errors, timeouts and 5xx answers, with exponential backoff; a 4xx answer is
the receiver refusing the payload, so it fails at once with the status and body in the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

logger = logging.getLogger(__name__)


class AlertError(RuntimeError):
    """The alert could not be delivered."""


@dataclass(frozen=True)
class AlertPolicy:
    timeout_seconds: float = 5.0
    attempts: int = 4
    backoff_seconds: float = 0.5


def post_alert(
    url: str | None,
    payload: Mapping[str, Any],
    policy: AlertPolicy = AlertPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST ``payload`` to ``url``; returns the number of attempts (0 when no URL is configured, in which
    case the alert is only logged)."""
    if not url:
        logger.warning("alert (no webhook configured): %s", dict(payload))
        return 0
    last_error = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        try:
            response = requests.post(url, json=dict(payload), timeout=policy.timeout_seconds)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return attempt
            if response.status_code < 500:
                raise AlertError(f"webhook refused the alert: HTTP {response.status_code} {response.text[:200]}")
            last_error = f"HTTP {response.status_code} {response.text[:200]}"
        if attempt < policy.attempts:
            sleep(policy.backoff_seconds * 2 ** (attempt - 1))
    raise AlertError(f"webhook unreachable after {policy.attempts} attempts: {last_error}")
