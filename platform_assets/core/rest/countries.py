"""REST Countries (https://restcountries.com/v3.1) client and row shaping, free of Dagster.

The seed's ADF pipeline calls ``<base>/name/<country>`` for a list of countries and lands one JSON
file per country. This module is that pipeline's library half:

* :func:`session_with_retries` — a ``requests`` session whose transport retries connection errors,
  read timeouts and 500/502/503/504 with exponential backoff (urllib3 ``Retry``), GET only;
* :func:`fetch_country` — one call, validated: anything but a non-empty JSON list of country
  objects raises :class:`CountryApiError` naming the country;
* :func:`country_file_name` / :func:`write_json_atomic` — where and how the raw response lands;
* :func:`flatten` — one silver row per country document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from upath import UPath
from urllib3.util.retry import Retry

from platform_assets.core.errors import CountryApiError
from platform_assets.core.lake.locations import write_atomically

RETRY_STATUSES = (500, 502, 503, 504)
_APOSTROPHES = ("'", "\u2019")
_NAME_PUNCTUATION = {" ", "-", ".", *_APOSTROPHES}
_BODY_EXCERPT = 200

# The columns of a flattened row (silver/countries), in order.
COLUMNS = (
    "name",
    "official_name",
    "cca2",
    "cca3",
    "region",
    "subregion",
    "population",
    "area",
    "capital",
    "currencies",
    "languages",
    "source_file",
)


def excerpt(body: str | bytes) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "..."


def session_with_retries(attempts: int = 4, backoff: float = 0.5) -> requests.Session:
    """A session making up to `attempts` tries per GET (so ``attempts - 1`` retries).

    Retried: connection errors, read timeouts and HTTP 500/502/503/504, sleeping
    ``backoff * 2**(n-1)`` seconds before retry n >= 2 (urllib3's schedule; a ``Retry-After`` header
    is honoured). Only GET is retried. After the last try a 5xx response is returned as is (so
    :func:`fetch_country` can report its status) and a connection error/timeout is raised as the
    usual ``requests`` exception.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    retries = attempts - 1
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = "application/json"
    return session


def country_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/name/{quote(name.strip(), safe='')}"


def parse_response(body: str | bytes, country: str) -> list[dict]:
    """The matches in a ``/name/<country>`` response body, or :class:`CountryApiError` (malformed)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CountryApiError(
            country, f"malformed response (not JSON: {exc.__class__.__name__}): {excerpt(body)}"
        ) from None
    if not isinstance(document, list) or not document:
        raise CountryApiError(
            country, f"malformed response (expected a non-empty list of countries): {excerpt(body)}"
        )
    for i, match in enumerate(document):
        if not isinstance(match, dict) or not isinstance(match.get("name"), Mapping):
            raise CountryApiError(
                country, f"malformed response (match {i} has no 'name' object): {excerpt(body)}"
            )
    return document


def fetch_country(session: requests.Session, base_url: str, name: str, timeout: float = 10) -> list[dict]:
    """GET ``<base_url>/name/<name>`` and return the matching country documents.

    Raises :class:`CountryApiError` for an HTTP error status (4xx, or 5xx once retries are spent) and
    for a body that is not a non-empty JSON list of objects with a ``name`` object. Network errors
    (after the session's retries) propagate as ``requests.RequestException``.
    """
    response = session.get(country_url(base_url, name), timeout=timeout)
    if response.status_code >= 400:
        raise CountryApiError(
            name, f"HTTP {response.status_code}: {excerpt(response.content)}", response.status_code
        )
    return parse_response(response.content, name)


def country_file_name(name: str) -> str:
    """``"United States"`` -> ``"united_states.json"``.

    Names may hold letters (any script), spaces, '-', '.' and apostrophes, and must hold a letter:
    nothing that could move the file out of its folder. Runs of spaces become one underscore, so
    :func:`name_from_file` gives the name back (lower-cased).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"country name must be a non-empty string, got {name!r}")
    bad = sorted({c for c in name if not (c.isalpha() or c in _NAME_PUNCTUATION)})
    if bad:
        raise ValueError(
            f"invalid country name {name!r}: {''.join(bad)!r} not allowed "
            "(letters, spaces, '-', '.' and apostrophes only)"
        )
    if not any(c.isalpha() for c in name):
        raise ValueError(f"invalid country name {name!r}: it has no letter")
    return "_".join(name.lower().split()) + ".json"


def name_from_file(file_name: str) -> str:
    """Inverse of :func:`country_file_name`, up to case: ``"united_states.json"`` -> ``"united states"``."""
    stem = Path(file_name).name.removesuffix(".json")
    return stem.replace("_", " ")


def write_json_atomic(path: UPath | Path | str, document: Any) -> int:
    """Write `document` as UTF-8 JSON to `path` via a hidden temp file + rename; return the bytes written.

    Readers see the old file or the new one, never a half-written one. The temp file is hidden and
    not ``*.json``, so a reader globbing ``*.json`` never picks it up. `path` may be an object-store
    location (``core.lake``).
    """
    path = path if isinstance(path, UPath | Path) else Path(path)
    data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    write_atomically(path, lambda handle: handle.write(data))
    return len(data)


def _same_name(candidate: Any, wanted: str) -> bool:
    return isinstance(candidate, str) and " ".join(candidate.split()).casefold() == wanted


def pick_match(matches: Sequence[dict], name: str | None) -> dict:
    """The document for `name` among a response's matches.

    ``/name/India`` also matches "British Indian Ocean Territory": take the match whose common or
    official name equals `name` (case-insensitive), else the first one.
    """
    if not matches:
        raise ValueError("no matches to pick from")
    if name:
        wanted = " ".join(name.split()).casefold()
        for match in matches:
            names = match.get("name") or {}
            if _same_name(names.get("common"), wanted) or _same_name(names.get("official"), wanted):
                return match
    return matches[0]


def _joined(values: Any) -> str | None:
    items = [str(v) for v in values if v not in (None, "")] if values else []
    return ", ".join(items) if items else None


def as_number(value: Any, kind: type) -> Any:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def flatten(
    document: dict | Sequence[dict], *, name: str | None = None, source_file: str | None = None
) -> dict:
    """One silver row from a country document (or from a whole response, picking `name`'s match).

    Columns: see :data:`COLUMNS`. ``capital`` is the capitals comma-joined, ``currencies`` the
    sorted currency codes, ``languages`` the sorted language names. Missing or empty optional fields
    are None.
    """
    if not isinstance(document, Mapping):
        document = pick_match(document, name)
    names = document.get("name") or {}
    capital = document.get("capital")
    if isinstance(capital, str):
        capital = [capital]
    currencies = document.get("currencies") or {}
    languages = document.get("languages") or {}
    return {
        "name": names.get("common"),
        "official_name": names.get("official"),
        "cca2": document.get("cca2"),
        "cca3": document.get("cca3"),
        "region": document.get("region") or None,
        "subregion": document.get("subregion") or None,
        "population": as_number(document.get("population"), int),
        "area": as_number(document.get("area"), float),
        "capital": _joined(capital),
        "currencies": _joined(sorted(currencies)) if isinstance(currencies, Mapping) else None,
        "languages": _joined(sorted(languages.values())) if isinstance(languages, Mapping) else None,
        "source_file": source_file,
    }
