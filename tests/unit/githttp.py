"""A git server over smart HTTP on loopback, as a team's forge serves a private repository:
`git http-backend` behind Basic authentication with a token, so git on the unit runs its
`remote-http` helper, asks for credentials and fetches exactly as it would from a forge."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import threading
from pathlib import Path

USER = "x-access-token"
TOKEN = "tok-5c1e0a9b7d3f"  # a throwaway token for a server on loopback


class GitHttpServer:
    """Serves the bare repositories under `root` at `http://127.0.0.1:PORT/<name>.git`.

    `hold` makes every request wait until it is set again, so a test can look at the processes
    of a fetch in flight; `requests` counts the requests answered.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hold = threading.Event()
        self.hold.set()
        self.waiting = threading.Event()
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.answer(self)

            def do_POST(self) -> None:
                server.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str, *, credentials: bool = True) -> str:
        userinfo = f"{USER}:{TOKEN}@" if credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, request: http.server.BaseHTTPRequestHandler) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="forge"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        self.waiting.set()
        self.hold.wait(timeout=60)
        path, _, query = request.path.partition("?")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": USER,
            "REMOTE_ADDR": "127.0.0.1",
        }
        if request.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = request.headers["Content-Encoding"]
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
        self.requests += 1
