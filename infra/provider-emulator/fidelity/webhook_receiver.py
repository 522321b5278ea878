"""A webhook receiver on 127.0.0.1 for the push-notification checks of check_google.py and
check_graph.py.

It records every request (path, query, headers, body) and answers Microsoft Graph's validation
requests (`?validationToken=...`) as Graph's documentation asks: 200, `text/plain`, the decoded
token as the body. Notifications get 202.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from dataclasses import dataclass


@dataclass
class Hit:
    path: str
    query: dict
    headers: dict  # lower-case names
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                with receiver._lock:
                    receiver.hits.append(Hit(parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body))
                token = query.get("validationToken")
                if token is not None:
                    payload = token.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                else:
                    payload = b""
                    self.send_response(202)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def at(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]

    def wait(self, path: str, n: int, timeout: float = 10.0) -> list[Hit]:
        """The requests to `path` once there are at least `n` (fewer after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = self.at(path)
            if len(hits) >= n:
                return hits
            time.sleep(0.02)
        return self.at(path)

    def still(self, path: str, n: int, pause: float = 0.5) -> bool:
        """After a pause, whether `path` has had exactly `n` requests."""
        time.sleep(pause)
        return len(self.at(path)) == n
