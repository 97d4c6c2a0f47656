"""Webhook alerts against a real HTTP receiver on loopback."""

from __future__ import annotations

import pytest

from platform_assets.core.alerts import AlertError, AlertPolicy, post_alert
from platform_assets_tests.receiver import Receiver

FAST = AlertPolicy(timeout_seconds=2, attempts=3, backoff_seconds=0.01)


def test_alert_is_posted_as_json():
    with Receiver() as receiver:
        assert post_alert(receiver.url, {"pipeline_name": "p", "run_id": "r1"}, FAST) == 1
    assert receiver.bodies == [{"pipeline_name": "p", "run_id": "r1"}]


def test_retries_recover_from_503():
    with Receiver(fail_first=2) as receiver:
        assert post_alert(receiver.url, {"run_id": "r2"}, FAST) == 3
    assert receiver.bodies == [{"run_id": "r2"}]


def test_gives_up_after_the_last_attempt_with_a_clear_error():
    with Receiver(fail_first=10) as receiver:
        with pytest.raises(AlertError, match="after 3 attempts: HTTP 503"):
            post_alert(receiver.url, {"run_id": "r3"}, FAST)
    assert receiver.attempts == 3 and receiver.bodies == []


def test_4xx_is_not_retried():
    with Receiver(fail_first=10, status=400) as receiver:
        with pytest.raises(AlertError, match="HTTP 400"):
            post_alert(receiver.url, {"run_id": "r4"}, FAST)
    assert receiver.attempts == 1


def test_connection_refused_is_retried_then_reported():
    with pytest.raises(AlertError, match="ConnectionError"):
        post_alert("http://127.0.0.1:1/alert", {"run_id": "r5"}, FAST)


def test_no_webhook_configured_only_logs(caplog):
    assert post_alert(None, {"run_id": "r6"}) == 0
    assert "no webhook configured" in caplog.text
