"""A stand-in started on a port that is taken (another stand-in, another make dev) says so in one line and
exits 1, rather than a traceback."""

from __future__ import annotations

import socket

import pytest

from platform_devkit import countries_standin, trades_lookup_standin, trades_standin


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (trades_standin, "trade feed stand-in"),
        (trades_lookup_standin, "symbol lookup stand-in"),
        (countries_standin, "REST Countries stand-in"),
    ],
)
def test_a_taken_port_is_one_line_naming_it(module, name, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert module.main(["--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"{name}: port {port} on 127.0.0.1 is in use (another stand-in still running?): stop it, or choose "
        "another port with --port\n"
    )
