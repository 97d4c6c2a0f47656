"""JSON alerts to a webhook (the seed's Logic App), with a timeout and retries.

Retries happen on connection errors, timeouts and 5xx answers, with exponential backoff; a 4xx answer is
the receiver refusing the payload, so it fails at once with the status and body in the error.

The webhook URL is a secret (tokens sit in its user info, path or query), and the errors of HTTP
libraries quote it, path and query included. So errors here never carry the library's text: they name
the URL by its setting and say what happened in words of their own (refused, timed out, HTTP 503), and
any part of the URL a receiver echoes back in its answer is masked.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests

from platform_assets.core.errors import AlertError
from platform_assets.core.redaction import MASK

WEBHOOK_SETTING = "PLATFORM_ALERT_WEBHOOK_URL"

logger = logging.getLogger(__name__)


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
        except requests.Timeout:
            last_error = f"no answer within {policy.timeout_seconds:g} s"
        except requests.RequestException as exc:
            last_error = _describe(exc)
        else:
            if response.status_code < 300:
                return attempt
            answer = f"HTTP {response.status_code} {_mask(response.text[:200], url)}".rstrip()
            if response.status_code < 500:
                raise AlertError(
                    f"the webhook ({WEBHOOK_SETTING}) refused the alert: {answer}", retryable=False
                )
            last_error = answer
        if attempt < policy.attempts:
            sleep(policy.backoff_seconds * 2 ** (attempt - 1))
    raise AlertError(
        f"the webhook ({WEBHOOK_SETTING}) is unreachable after {policy.attempts} attempt(s): {last_error}"
    )


def _describe(exc: BaseException) -> str:
    """What went wrong, from the error's type and the operating system's error, never its message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return f"connection failed ({os.strerror(seen.errno)})"
        for arg in getattr(seen, "args", ()):  # urllib3 wraps the OS error in its exceptions' arguments
            reason = getattr(arg, "reason", None)
            if isinstance(reason, BaseException) and reason is not seen:
                return _describe(reason)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return "the URL is not a valid http(s) URL"
    return f"connection failed ({type(exc).__name__})"


def _mask(text: str, url: str) -> str:
    """``text`` with every part of ``url`` that could be a secret replaced by ``***``."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    secrets = {
        url,
        parts.netloc,
        userinfo,
        parts.path,
        parts.query,
        parts.username or "",
        parts.password or "",
    }
    secrets |= set(parts.path.split("/")) | {value for _, value in parse_qsl(parts.query)}
    secrets |= {unquote(s) for s in secrets}
    # a secret shorter than four characters cannot be told from ordinary words
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
