"""A loopback HTTP server for download tests: serves a folder from a thread on 127.0.0.1.

It honours `Range: bytes=N-` (like a real file host) unless told not to, records every
request, and can cut responses short (a dropped connection) or answer an error status instead.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LoopbackServer:
    def __init__(self, root: Path, *, ranges: bool = True):
        self.root = root
        self.ranges = ranges
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cuts: list[int] = []  # the next responses send only this many body bytes, then hang up
        self.statuses: list[int] = []  # the next responses are these error statuses instead
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                if server.statuses:
                    self.send_error(server.statuses.pop(0))
                    return
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404, "Not Found")
                    return
                data = path.read_bytes()
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                start = int(match.group(1)) if match and server.ranges else 0
                if start >= len(data) and start > 0:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cuts:
                    body = body[: server.cuts.pop(0)]
                    self.close_connection = True
                self.wfile.write(body)
                self.wfile.flush()

        return Handler
