"""Scenario 7: a collector cannot read the credentials file, write outside its state
directory or read another collector's state, and still reaches InfluxDB over the network."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
import time
from pathlib import Path

from machine_deploy import DATABASE, CharmUnit, deployed_unit, serving_remote
from machine_harness import wait_for
from machine_trees import push_tree, real_libraries
from metrics.testing import InfluxServer


def test_sandbox_denies_files_but_not_influxdb(
    steady_unit: CharmUnit, influx: InfluxServer
) -> None:
    # Another collector must have state to be refused: ticker keeps a run counter.
    wait_for(
        "ticker's state directory",
        lambda: (
            steady_unit.container.run(
                ["test", "-e", "/var/lib/private/metrics-collector/ticker/runs"], check=False
            ).returncode
            == 0
        ),
    )
    newer = f'SELECT * FROM "sandbox_probe" WHERE time > {time.time_ns()}'  # noqa: S608
    rows = wait_for(
        "a sandbox_probe point written after ticker kept state",
        lambda: influx.query(newer, DATABASE),
        timeout=60,
    )
    assert isinstance(rows, list)
    probe = rows[0]
    # The point itself reached InfluxDB from inside the sandbox.
    assert probe["read_credentials"] == "EACCES", probe
    # systemd hides other DynamicUser state directories from the sandbox altogether.
    assert probe["read_other_state"] in ("EACCES", "ENOENT"), probe
    assert probe["write_state_root"] in ("EACCES", "EROFS"), probe
    assert probe["write_etc"] in ("EACCES", "EROFS"), probe
    assert probe["write_own_state"] == "allowed", probe
    assert probe["uid"] != 0, probe
    assert probe["password_in_environment"] is False, probe
    for path in ("/etc/probe", "/var/lib/ubuntu-community-metrics/probe"):
        assert steady_unit.container.run(["test", "-e", path], check=False).returncode == 1


def test_the_original_collectors_libraries_work_under_the_sandbox(
    machine_image: Path, charm: Path, influx: InfluxServer, tmp_path: Path
) -> None:
    """launchpadlib (httplib2), lxml, bs4 and TLS under MemoryDenyWriteExecute and the rest of
    the unit's hardening: the evidence for keeping it (the original charm dropped it when
    pyOpenSSL failed)."""
    with TlsServer(tmp_path / "tls") as server, serving_remote(tmp_path / "remote") as remote:
        push_tree(remote, {"real_libraries": real_libraries(server.url)}, message="libraries")
        with deployed_unit(machine_image, charm, influx, remote) as unit:
            rows = wait_for(
                "a point from the collector that loads the real libraries",
                lambda: influx.query('SELECT * FROM "real_libraries"', DATABASE),
                timeout=120,
            )
            hardening = unit.show(
                "metrics-collector@real_libraries.service", "MemoryDenyWriteExecute"
            )
    assert isinstance(rows, list)
    assert rows[0]["parsed"] == 7
    assert rows[0]["httplib2_status"] == 200
    assert rows[0]["requests_count"] == 42
    assert hardening == {"MemoryDenyWriteExecute": "yes"}


class TlsServer:
    """HTTPS on loopback with a throwaway self-signed certificate; /count answers 42."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True,
            capture_output=True,
        )  # fmt: skip

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"count": 42}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
