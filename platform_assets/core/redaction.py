"""Secrets out of audit rows: parameter values, error texts and URLs are masked before they are stored.

Errs towards masking: a name that merely contains ``password``/``token``/``webhook``... is masked, and
credentials inside URLs, connection strings, query strings and ``Bearer`` headers are masked wherever
they appear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_SECRET_NAME = re.compile(
    r"passw(?:or)?d|secret|token|api[_-]?key|credential|webhook|authori[sz]ation"
    r"|private[_-]?key|access[_-]?key|account[_-]?key|subscription[_-]?key",
    re.IGNORECASE,
)
# Further names that are secret as a query-string or connection-string key (``?sig=``, ``;PWD=``),
# though too generic to hide as a parameter name.
_SECRET_KEY = re.compile(r"^(?:key|sig|signature|code|pwd|pass|auth|sas)$|signature$", re.IGNORECASE)
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#\s\"'<>]*)(?P<rest>[^\s\"'<>]*)"
)
_KEY_VALUE = re.compile(
    r"(?<![\w.\-])(?P<key>[A-Za-z][\w.\-]*)(?P<eq>\s*=\s*)(?P<value>\"[^\"]*\"|'[^']*'|\{[^}]*\}|[^;&#\s,\"'})\]]+)"
)
# A quoted key in JSON or Python text: ``"password": "..."``.
_QUOTED_KEY_VALUE = re.compile(
    r"(?P<q>[\"'])(?P<key>[\w.\- ]+)(?P=q)(?P<eq>\s*:\s*)(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^,}\]\s]+)"
)
_BEARER = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True when ``name`` (a parameter, key or column name) looks like it holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _mask_url(match: re.Match[str]) -> str:
    authority, rest = match["authority"], match["rest"]
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        if colon:
            authority = f"{user}:{MASK}@{host}"
    if "hook" in (authority + rest).lower() and rest.strip("/"):
        # Webhook URLs (Slack, Teams, Discord...) carry their secret in the path.
        rest = f"/{MASK}"
    return f"{match['scheme']}{authority}{rest}"


def _mask_key_value(match: re.Match[str]) -> str:
    key = match["key"]
    if _SECRET_NAME.search(key) or _SECRET_KEY.search(key):
        return f"{key}{match['eq']}{MASK}"
    return match[0]


def _mask_quoted_key_value(match: re.Match[str]) -> str:
    if _SECRET_NAME.search(match["key"]) or _SECRET_KEY.search(match["key"]):
        quote = match["value"][0] if match["value"][0] in "\"'" else ""
        return f"{match['q']}{match['key']}{match['q']}{match['eq']}{quote}{MASK}{quote}"
    return match[0]


def redact_text(text: str) -> str:
    """``text`` with URL passwords, webhook paths, secret ``key=value`` pairs and bearer tokens masked.

    Works on any text (SQLAlchemy URLs, https URLs, ODBC/libpq connection strings, error messages), so
    it never fails on a value it cannot parse; it only masks what it recognises.
    """
    text = _URL.sub(_mask_url, text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    text = _QUOTED_KEY_VALUE.sub(_mask_quoted_key_value, text)
    return _BEARER.sub(lambda m: f"{m['scheme']} {MASK}", text)


def _redact_value(name: str, value: Any) -> Any:
    """A JSON-able copy of ``value`` with secrets masked; mappings are searched by key, recursively."""
    if name and _SECRET_NAME.search(name):
        return MASK
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_redact_value("", v) for v in value), key=str)
    return redact_text(str(value))


def redact_parameters(params: Mapping[str, object]) -> dict[str, str]:
    """Parameters as strings, with secrets masked.

    Values of secret-sounding names become ``***``; other values keep their text with any URL password,
    webhook path, query-string token or bearer token masked. Strings are kept as they are, mappings and
    sequences become sorted JSON (searched for secrets by key), other values their ``str``.
    """
    result: dict[str, str] = {}
    for name, value in params.items():
        redacted = _redact_value(str(name), value)
        if isinstance(redacted, str):
            result[str(name)] = redacted
        elif isinstance(redacted, dict | list):
            result[str(name)] = json.dumps(redacted, sort_keys=True, default=str)
        else:
            result[str(name)] = json.dumps(redacted)  # None, bools and numbers: null, true, 3, 1.5
    return result
