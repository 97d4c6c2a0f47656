"""How Delta commits on S3 are made safe with the pinned deltalake (1.6.x), proven on moto's S3 server.

What deltalake 1.6 does (read from its source and checked here):

* every commit is a ``PUT`` of ``_delta_log/<version>.json`` with ``If-None-Match: *`` (object_store's
  default ``AWS_CONDITIONAL_PUT=etag``): no lock service, no temporary file and rename;
* a writer that loses a race for a version gets ``412 Precondition Failed``, re-reads the log, checks for
  conflicts and commits the next version (appends), or raises ``CommitFailedError`` (no retries left, or a
  conflicting operation): never two commits for one version, never a lost commit;
* ``AWS_S3_ALLOW_UNSAFE_RENAME`` changes nothing any more (the commit is still a conditional put);
* ``AWS_S3_LOCKING_PROVIDER=dynamodb`` is ignored since 1.6.1 (an error is logged, DynamoDB is never called);
* with conditional puts switched off (``AWS_CONDITIONAL_PUT=disabled``) every commit fails: there is no
  unsafe fallback for a store without conditional writes.

Races are made deterministic by a small relay between the writers and moto (its own process, as is moto:
delta-rs can hold the GIL while it waits on the network): it holds the commit ``PUT`` of version 1 until
both writers have sent theirs, then forwards them one after the other, and logs every request.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BUCKET = "commits"
COMMIT_1 = "_delta_log/00000000000000000001.json"
ROWS_PER_WRITER = 3
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
    "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance metadata service
}
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


# --- the relay (run as ``python test_s3_commits.py relay ...``) -------------------------------------------


def _relay(upstream: int, log_file: str, gate_suffix: str, gate_count: int = 2) -> None:
    """Forward HTTP to moto on ``upstream``; log each request as a JSON line; hold the first ``gate_count``
    PUTs whose path ends with ``gate_suffix`` until all have arrived, then forward them in arrival order."""
    gate = threading.Condition()
    state = {"arrived": 0, "turn": 0}
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            gated = (
                bool(gate_suffix) and self.command == "PUT" and self.path.split("?")[0].endswith(gate_suffix)
            )
            if gated:
                with gate:
                    ticket = state["arrived"]
                    state["arrived"] += 1
                    gated = ticket < gate_count
                    gate.notify_all()
                    if gated:
                        gate.wait_for(lambda: state["arrived"] >= gate_count, timeout=40)
                        gate.wait_for(lambda: state["turn"] == ticket, timeout=40)
            try:
                upstream_conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                data = response.read()
                upstream_conn.close()
            finally:
                if gated:
                    with gate:
                        state["turn"] += 1
                        gate.notify_all()
            entry = {
                "method": self.command,
                "path": self.path.split("?")[0],
                "query": self.path.partition("?")[2],
                "status": response.status,
                "if_none_match": self.headers.get("If-None-Match"),
                "target": self.headers.get("X-Amz-Target"),
                "copy_source": self.headers.get("x-amz-copy-source"),
                "gated": gated,
            }
            with log_lock, open(log_file, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() in _HOP_BY_HOP or (key.lower() == "content-length" and self.command != "HEAD"):
                    continue
                self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- a writer (run as ``python test_s3_commits.py write ...``) ---------------------------------------------


def _write(url: str, tag: str, mode: str, retries: str) -> None:
    """Write ROWS_PER_WRITER rows tagged ``tag``; print the outcome as JSON (never raise)."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    try:
        if mode == "append" and retries == "default":
            # the platform's own append (quarantines, ...): what two Dagster runs would do
            import polars as pl

            from platform_assets.core.lake import delta

            delta.append(url, pl.DataFrame({"writer": [tag] * ROWS_PER_WRITER}))
        else:
            write_deltalake(
                url,
                pa.table({"writer": [tag] * ROWS_PER_WRITER}),
                mode=mode,
                commit_properties=None
                if retries == "default"
                else CommitProperties(max_commit_retries=int(retries)),
            )
        print(json.dumps({"tag": tag, "ok": True}))
    except Exception as error:  # reported to the test, which asserts on it
        print(json.dumps({"tag": tag, "ok": False, "error": type(error).__name__, "message": str(error)}))


# --- fixtures -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def moto_port(tmp_path_factory):
    """moto's server (S3 and DynamoDB) on loopback, with one bucket. Fails, never skips, if it cannot start."""
    try:
        import boto3
        import moto.server  # noqa: F401  (moto[server]: flask, werkzeug)
    except ImportError as error:
        pytest.fail(f"moto's server is not installed ({error}); run: .venv/bin/pip install 'moto[server]'")
    port = _free_port()
    errors = tmp_path_factory.mktemp("moto") / "stderr.txt"
    with open(errors, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception as error:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(
                        f"moto's server did not start on 127.0.0.1:{port} ({error!r}); "
                        f"its stderr: {errors.read_text()[-2000:]}"
                    )
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


class Relay:
    def __init__(self, moto_port: int, log: Path, gate_suffix: str = ""):
        self.log = log
        log.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "relay", str(moto_port), str(log), gate_suffix],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.process.kill()
            pytest.fail(f"the relay did not start (said {line!r})")
        self.endpoint = f"http://127.0.0.1:{int(line)}"

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commit_puts(self, table: str) -> list[dict]:
        """Requests that write a commit file of ``table`` (PUT, or a multipart / copy onto it)."""
        return [
            r
            for r in self.requests()
            if r["method"] in ("PUT", "POST")
            and r["path"].startswith(f"/{BUCKET}/{table}/_delta_log/")
            and r["path"].endswith(".json")
        ]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def s3(moto_port, tmp_path, monkeypatch):
    """A relay to moto and the standard AWS variables pointing at it, nothing else (no lock settings)."""
    relays: list[Relay] = []

    def start(gate_suffix: str = "", extra: dict[str, str] | None = None) -> tuple[Relay, dict[str, str]]:
        relay = Relay(moto_port, tmp_path / f"relay{len(relays)}.jsonl", gate_suffix)
        relays.append(relay)
        settings = {**CREDENTIALS, "AWS_ENDPOINT_URL": relay.endpoint, **(extra or {})}
        for name in list(os.environ):  # a developer's own AWS settings must not leak in
            if name.startswith(("AWS_", "DELTA_DYNAMO")) and name not in settings:
                monkeypatch.delenv(name)
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        return relay, dict(os.environ)

    yield start
    for relay in relays:
        relay.close()


def _seed(url: str) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(url, pa.table({"writer": ["seed"]}))


def _race(env: dict[str, str], url: str, mode: str = "append", retries: str = "default") -> dict[str, dict]:
    """Two writer processes, A and B, writing to ``url`` at once; their outcomes by tag."""
    writers = [
        subprocess.Popen(
            [sys.executable, __file__, "write", url, tag, mode, retries],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in "AB"
    ]
    outcomes = {}
    for writer in writers:
        out, err = writer.communicate(timeout=90)
        assert writer.returncode == 0 and out.strip(), f"writer crashed: {err[-2000:]}"
        result = json.loads(out.strip().splitlines()[-1])
        outcomes[result["tag"]] = result
    return outcomes


def _rows(url: str, version: int | None = None) -> list[str]:
    from deltalake import DeltaTable

    return sorted(DeltaTable(url, version=version).to_pyarrow_table().column("writer").to_pylist())


def delta_version(url: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(url).version()


# --- tests --------------------------------------------------------------------------------------------------


def test_standard_variables_alone_commit_by_conditional_put(s3):
    """The documented settings (endpoint, credentials, region; no lock settings): writes succeed, and each
    commit is one PUT with If-None-Match: * — no temporary file, no copy, no DynamoDB."""
    import polars as pl

    from platform_assets.core.lake import delta

    relay, _ = s3()
    url = f"s3://{BUCKET}/plain"
    assert delta.append(url, pl.DataFrame({"writer": ["a", "b"]})) == 0
    assert delta.append(url, pl.DataFrame({"writer": ["c"]})) == 1
    assert delta.version(url) == 1 and _rows(url) == ["a", "b", "c"]

    commits = relay.commit_puts("plain")
    assert [(r["method"], r["path"].rsplit("/", 1)[1], r["if_none_match"], r["status"]) for r in commits] == [
        ("PUT", "00000000000000000000.json", "*", 200),
        ("PUT", "00000000000000000001.json", "*", 200),
    ]
    requests = relay.requests()
    assert not [r for r in requests if r["target"] or r["copy_source"] or r["path"].endswith(".tmp")]


def test_racing_appends_get_one_version_each(s3):
    """Two appends (the platform's ``delta.append``, no lock settings) race for version 1: one commit wins
    it, the other gets 412, re-reads the log and lands as version 2. Both succeed, no row is lost."""
    table = "race_append"
    url = f"s3://{BUCKET}/{table}"
    relay, env = s3(gate_suffix=f"/{table}/{COMMIT_1}")
    _seed(url)

    outcomes = _race(env, url)

    assert outcomes["A"]["ok"] and outcomes["B"]["ok"], outcomes
    first = [r for r in relay.commit_puts(table) if r["path"].endswith(COMMIT_1)]
    assert sorted(r["status"] for r in first) == [200, 412]  # both raced for v1: exactly one got it
    assert all(r["gated"] and r["if_none_match"] == "*" for r in first)
    assert delta_version(url) == 2
    assert _rows(url) == ["A"] * ROWS_PER_WRITER + ["B"] * ROWS_PER_WRITER + ["seed"]
    at_one = _rows(url, version=1)
    winner = at_one[0]
    assert at_one == sorted([winner] * ROWS_PER_WRITER + ["seed"])  # v1 holds one writer's rows only


def test_racing_writers_without_retries_one_fails_clearly(s3):
    """With no commit retries the loser of the race fails with CommitFailedError; its rows are not in
    the table, the winner's are, and version 1 exists once. AWS_S3_ALLOW_UNSAFE_RENAME=true (set here)
    changes nothing: the commits are still conditional PUTs."""
    url = f"s3://{BUCKET}/race_noretry"
    relay, env = s3(gate_suffix=f"/race_noretry/{COMMIT_1}", extra={"AWS_S3_ALLOW_UNSAFE_RENAME": "true"})
    _seed(url)

    outcomes = _race(env, url, retries="0")

    failed = [tag for tag, outcome in outcomes.items() if not outcome["ok"]]
    assert len(failed) == 1, outcomes
    assert outcomes[failed[0]]["error"] == "CommitFailedError"
    winner = "B" if failed == ["A"] else "A"
    assert delta_version(url) == 1
    assert _rows(url) == sorted([winner] * ROWS_PER_WRITER + ["seed"])
    first = [r for r in relay.commit_puts("race_noretry") if r["path"].endswith(COMMIT_1)]
    assert sorted((r["status"], r["if_none_match"]) for r in first) == [(200, "*"), (412, "*")]


def test_racing_overwrites_conflict(s3):
    """Two overwrites race: one replaces the table, the other fails with a conflict (it would delete
    files the winner just wrote), instead of silently overwriting the winner's commit."""
    url = f"s3://{BUCKET}/race_overwrite"
    _, env = s3(gate_suffix=f"/race_overwrite/{COMMIT_1}")
    _seed(url)

    outcomes = _race(env, url, mode="overwrite")

    failed = [tag for tag, outcome in outcomes.items() if not outcome["ok"]]
    assert len(failed) == 1, outcomes
    assert outcomes[failed[0]]["error"] == "CommitFailedError"
    assert "concurrent transaction" in outcomes[failed[0]]["message"]
    winner = "B" if failed == ["A"] else "A"
    assert delta_version(url) == 1 and _rows(url) == [winner] * ROWS_PER_WRITER


def test_dynamodb_locking_provider_is_ignored(s3, capfd):
    """AWS_S3_LOCKING_PROVIDER=dynamodb (deltalake >= 1.6.1): an error is logged, DynamoDB is never called
    (the lock table here does not even exist) and the commit is the same conditional PUT."""
    import deltalake

    relay, _ = s3(extra={"AWS_S3_LOCKING_PROVIDER": "dynamodb", "DELTA_DYNAMO_TABLE_NAME": "no_such_table"})
    url = f"s3://{BUCKET}/dynamo"
    _seed(url)

    assert delta_version(url) == 0 and _rows(url) == ["seed"]
    assert not [r for r in relay.requests() if r["target"]], "DynamoDB was called"
    assert [(r["if_none_match"], r["status"]) for r in relay.commit_puts("dynamo")] == [("*", 200)]
    assert "no longer** supports S3DynamoDBLogStores" in capfd.readouterr().err, deltalake.__version__


def test_without_conditional_put_every_commit_fails(s3):
    """A store without conditional writes has no fallback: with AWS_CONDITIONAL_PUT=disabled every commit
    fails (AWS_S3_ALLOW_UNSAFE_RENAME does not bring back an unsafe mode) and no table appears."""
    from deltalake import DeltaTable

    s3(extra={"AWS_CONDITIONAL_PUT": "disabled", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"})
    url = f"s3://{BUCKET}/no_conditional_put"
    with pytest.raises(OSError, match="conditional put is disabled"):
        _seed(url)
    assert not DeltaTable.is_deltatable(url)


if __name__ == "__main__":
    if sys.argv[1] == "relay":
        _relay(int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "")
    elif sys.argv[1] == "write":
        _write(*sys.argv[2:6])
