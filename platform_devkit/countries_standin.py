"""A local stand-in for https://restcountries.com/v3.1, for offline demos and tests.

It serves ``GET /v3.1/name/<name>`` (and ``/name/<name>``) from the responses recorded in
``recorded/<country_file_name(name)>`` beside this module, and answers anything else with the API's
404 body. Run it on its own with::

    python -m platform_devkit.countries_standin --port 8765
    PLATFORM_COUNTRY_API_URL=http://127.0.0.1:8765/v3.1 dagster dev ...
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from platform_assets.core.rest.countries import country_file_name
from platform_devkit.standin_errors import cannot_serve

RECORDED = Path(__file__).with_name("recorded")
NOT_FOUND = json.dumps({"status": 404, "message": "Not Found"}).encode()
_PREFIXES = ("/v3.1/name/", "/name/")


def recorded_response(name: str, directory: Path = RECORDED) -> bytes | None:
    """The recorded body for ``/name/<name>``, or None when no response was recorded."""
    try:
        path = directory / country_file_name(name)
    except ValueError:
        return None
    return path.read_bytes() if path.is_file() else None


class StandinHandler(BaseHTTPRequestHandler):
    recorded: Path = RECORDED

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        name = next((unquote(path[len(p) :]) for p in _PREFIXES if path.startswith(p)), None)
        body = recorded_response(name, self.recorded) if name else None
        if body is None:
            self.send(404, NOT_FOUND)
        else:
            self.send(200, body)

    def send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start the stand-in on a daemon thread; return ``(server, base_url)``.

    ``base_url`` ends in ``/v3.1`` like the real one. Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = ThreadingHTTPServer((host, port), StandinHandler)
    threading.Thread(target=server.serve_forever, name="countries-standin", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}/v3.1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.countries_standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    try:
        server, base_url = serve(args.host, args.port)
    except OSError as exc:
        return cannot_serve("REST Countries stand-in", args.host, args.port, exc)
    print(f"REST Countries stand-in at {base_url} (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
