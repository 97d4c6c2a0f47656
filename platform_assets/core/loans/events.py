"""The loan application message: one status change of one application, keyed by its application id.

Value (JSON)::

    {"application_id": "APP-000042", "applicant_id": "CUS-0007", "amount": "25000.00",
     "currency": "USD", "status": "submitted", "event_time": "2026-12-07T23:59:01.250000+00:00"}

``amount`` is a decimal string (never a float: a binary float would change the cents); ``status`` one of
:data:`STATUSES`; ``event_time`` ISO-8601 in UTC. Keying by application id puts every event of one
application in one partition, in the order it was produced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from platform_assets.core.lake.delta import TIMESTAMP

DEFAULT_TOPIC = "loanApplications"
TABLE = "loan_applications"
STATUSES = ("submitted", "approved", "rejected", "withdrawn")
CURRENCY = "USD"

# The message's fields as bronze holds them: the amount stays the string that was sent (silver parses
# it), the event time is a UTC timestamp.
FIELDS: dict[str, pl.DataType] = {
    "application_id": pl.String(),
    "applicant_id": pl.String(),
    "amount": pl.String(),
    "currency": pl.String(),
    "status": pl.String(),
    "event_time": TIMESTAMP,
}


@dataclass(frozen=True)
class LoanEvent:
    application_id: str
    applicant_id: str
    amount: str
    status: str
    event_time: datetime
    currency: str = CURRENCY

    def key(self) -> bytes:
        return self.application_id.encode()

    def value(self) -> bytes:
        """The message value, its fields in the contract's order."""
        fields = {
            "application_id": self.application_id,
            "applicant_id": self.applicant_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "event_time": self.event_time.astimezone(UTC).isoformat(),
        }
        return json.dumps(fields, separators=(",", ":")).encode()
