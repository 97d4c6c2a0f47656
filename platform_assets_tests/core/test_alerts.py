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
        with pytest.raises(AlertError, match=r"after 3 attempt\(s\): HTTP 503"):
            post_alert(receiver.url, {"run_id": "r3"}, FAST)
    assert receiver.attempts == 3 and receiver.bodies == []


def test_4xx_is_not_retried():
    with Receiver(fail_first=10, status=400) as receiver:
        with pytest.raises(AlertError, match="HTTP 400"):
            post_alert(receiver.url, {"run_id": "r4"}, FAST)
    assert receiver.attempts == 1


def test_connection_refused_is_retried_then_reported():
    with pytest.raises(
        AlertError,
        match=r"^the webhook \(PLATFORM_ALERT_WEBHOOK_URL\) is unreachable after 3 "
        r"attempt\(s\): connection failed \(Connection refused\)$",
    ):
        post_alert("http://127.0.0.1:1/alert", {"run_id": "r5"}, FAST)


SECRET_PARTS = ("u:p4ssw0rd", "p4ssw0rd", "T0SECRETTOKEN", "QueryTok", "/hooks", "token=")
SECRET_URL = "http://u:p4ssw0rd@127.0.0.1:{port}/hooks/T0SECRETTOKEN?token=QueryTok"


def assert_no_secret(text: str) -> None:
    leaked = [part for part in SECRET_PARTS if part in text]
    assert not leaked, f"{leaked} leaked in: {text}"


@pytest.mark.parametrize("port", [1, 9])  # refused; nothing listening
def test_errors_never_carry_any_part_of_the_webhook_url(port, caplog):
    with pytest.raises(AlertError) as info:
        post_alert(SECRET_URL.format(port=port), {"run_id": "r7"}, FAST)
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value.__cause__) + repr(info.value.__context__))
    assert_no_secret(caplog.text)


def test_a_receiver_echoing_the_url_is_masked():
    with Receiver(fail_first=10, status=404) as receiver:
        port = receiver.server.server_address[1]
        handler = receiver.server.RequestHandlerClass

        def echo(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(f"no such hook: {self.path} (user u:p4ssw0rd)".encode())

        handler.do_POST = echo
        with pytest.raises(AlertError, match=r"refused the alert: HTTP 404 no such hook: \*\*\*") as info:
            post_alert(SECRET_URL.format(port=port), {"run_id": "r8"}, FAST)
    assert_no_secret(str(info.value))


def test_no_webhook_configured_only_logs(caplog):
    assert post_alert(None, {"run_id": "r6"}) == 0
    assert "no webhook configured" in caplog.text
