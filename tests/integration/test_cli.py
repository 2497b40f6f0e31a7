"""`enrollab` (PROTOCOL §4): help that explains, and clear errors instead of tracebacks."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_help_lists_the_commands() -> None:
    code, out = run("--help")
    assert code == 0 and "serve" in out and "demo" in out
    code, out = run("serve", "--help")
    assert code == 0 and "--db" in out and "ENROLLAB_ADMIN_PASSWORD" in out


def test_serve_refuses_an_unsupported_database(tmp_path: Path) -> None:
    code, out = run("serve", "--data", str(tmp_path), "--db", "mysql://root@localhost/x")
    assert code == 2 and "invalid-db-url" in out and "Traceback" not in out


def test_serve_reports_an_unreachable_database(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = run("serve", "--data", str(tmp_path), "--db", f"postgresql://postgres@127.0.0.1:{port}/test")
    assert code == 2 and "db-unavailable" in out and "Traceback" not in out


def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        code, out = run("serve", "--data", str(tmp_path / "d"), "--admin-port", str(s.getsockname()[1]))
    assert code == 2 and "port-in-use" in out


def test_serve_refuses_a_bad_smtp_relay(tmp_path: Path) -> None:
    code, out = run("serve", "--data", str(tmp_path), "--smtp", "no-port")
    assert code == 2 and "HOST:PORT" in out


def test_serve_refuses_an_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out = run("serve", "--data", str(blocker / "sub"))
    assert code == 2 and "data-dir" in out
