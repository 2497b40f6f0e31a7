"""The harness file server's handshake log (`harness.tls_gate`) against clients we did not write:
curl refusing an untrusted certificate is recorded with the alert it sent and leaves no request;
curl trusting the CA completes the handshake and its request is served as before."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from harness.fileserver import FileServer
from harness.observers import FileServerObserver

pytestmark = pytest.mark.timeout(60)


async def _curl(files: FileServer, *extra: str) -> str:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
        "--resolve", f"files.enrollab.test:{files.https_port}:127.0.0.1", *extra, files.https_url + "a.txt",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return out.decode()


async def _settled(files: FileServer, count: int) -> None:
    for _ in range(100):  # the server records the handshake as it ends, after the client exits
        if len(files.handshakes) >= count:
            return
        await asyncio.sleep(0.05)


async def test_a_refused_certificate_is_recorded_with_the_clients_alert_and_no_request() -> None:
    async with FileServer({"a.txt": b"hello"}, cert_mode="private") as files:
        status = await _curl(files)  # curl's own roots: the lab CA is not among them
        await _settled(files, 1)
        assert status == "000"
        assert files.requests == []
        [handshake] = files.handshakes
        assert not handshake.ok and handshake.client == "127.0.0.1"
        assert handshake.reason == "TLSV1_ALERT_UNKNOWN_CA", handshake


async def test_a_trusted_certificate_completes_the_handshake_and_serves_the_file(tmp_path: Path) -> None:
    async with FileServer({"a.txt": b"hello"}, cert_mode="private") as files:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(files.ca_pem)
        status = await _curl(files, "--cacert", str(ca))
        await _settled(files, 1)
        assert status == "200"
        assert [(r.scheme, r.path, r.status) for r in files.requests] == [("https", "a.txt", 200)]
        assert [(h.ok, h.reason) for h in files.handshakes] == [(True, None)]
        observer = FileServerObserver(files)
        assert observer.handshake_mark() == 1 and observer.handshakes(1) == []
