"""What a stand-in says when it cannot serve: one line instead of a traceback, shared by every stand-in."""

from __future__ import annotations

import errno
import sys


def cannot_serve(name: str, host: str, port: int, exc: BaseException) -> int:
    """Print why ``name`` (``trade feed stand-in``) cannot serve on ``host:port`` in one line; exit status 1.
    A port in use (another stand-in still running, most often) gets the way out."""
    reason = exc.__cause__ or exc
    if isinstance(reason, OSError) and reason.errno == errno.EADDRINUSE:
        print(
            f"{name}: port {port} on {host} is in use (another stand-in still running?): stop it, or "
            "choose another port with --port",
            file=sys.stderr,
        )
    else:
        print(f"{name}: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
    return 1
