"""`enrollab pki …` (PROTOCOL §4): factory certificates, the CA export, show, revoke; clear errors."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from harness.cli import main
from server.pki import ensure_pki, thumbprint

MAC = "A4251B0C3D5E"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def issue(data: Path, prefix: Path, mac: str = "a4:25:1b:0c:3d:5e", serial: str = "21WZ51234567") -> Result:
    options: list[str | Path] = ["--data", data, "--mac", mac, "--serial", serial, "--model", "J179", "--out", prefix]
    return run("pki", "issue-factory-cert", *options)


def clean_failure(result: Result, error: str) -> None:
    assert result.exit_code == 2, result.output
    assert error in result.output and "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)


# --- issue-factory-cert -----------------------------------------------------------------------


def test_issue_factory_cert_writes_key_and_cert_and_prints_the_thumbprint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = issue(data, tmp_path / "phone")
    assert result.exit_code == 0, result.output
    crt, key = tmp_path / "phone.crt", tmp_path / "phone.key"
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert result.stdout == thumbprint(cert) + "\n"  # one line, nothing else on stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    assert private.public_key() == cert.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == MAC
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "21WZ51234567"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    pki = ensure_pki(data)  # the command created the PKI; the certificate is its manufacturer CA's
    assert pki.manufacturer_ca.issued(cert) and pki.changes == []
    assert [r.thumbprint for r in pki.factory_records()] == [thumbprint(cert)]


def test_issue_factory_cert_uses_an_existing_pki(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, key_type="rsa-2048")
    assert issue(tmp_path, tmp_path / "a").exit_code == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "a.crt").read_bytes())
    assert pki.manufacturer_ca.issued(cert) and cert.public_key().key_size == 2048  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_thumbprint_is_easy_to_capture_in_a_shell_variable(tmp_path: Path) -> None:
    enrollab = Path(sys.executable).with_name("enrollab")
    if not enrollab.exists():
        pytest.skip("the enrollab entry point is not installed next to the interpreter")
    script = (
        f'TP=$("{enrollab}" pki issue-factory-cert --data "{tmp_path}/d" --mac {MAC} --serial S1 '
        f'--model J179 --out "{tmp_path}/p") && echo "[$TP]"'
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "p.crt").read_bytes())
    assert done.stdout == f"[{thumbprint(cert)}]\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--mac", "zz:zz", "--serial", "S1", "--model", "J179"], "invalid-mac"),
        (["--mac", MAC, "--serial", "with space", "--model", "J179"], "invalid-serial"),
        (["--mac", MAC, "--serial", "S1", "--model", "!"], "invalid-model"),
    ],
)
def test_issue_factory_cert_refuses_bad_input(tmp_path: Path, args: list[str], error: str) -> None:
    result = run("pki", "issue-factory-cert", "--data", tmp_path / "d", *args, "--out", tmp_path / "p")
    clean_failure(result, error)
    assert not (tmp_path / "p.key").exists() and not (tmp_path / "d").exists()


def test_issue_factory_cert_refuses_an_unwritable_out(tmp_path: Path) -> None:
    clean_failure(issue(tmp_path / "d", tmp_path / "missing" / "phone"), "cannot-write")
    (tmp_path / "phone.key").mkdir()
    clean_failure(issue(tmp_path / "d", tmp_path / "phone"), "cannot-write")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_issue_factory_cert_refuses_a_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    clean_failure(issue(tmp_path / "d", ro / "phone"), "cannot-write")


def test_an_unusable_data_dir_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    clean_failure(issue(blocker / "sub", tmp_path / "p"), "data-dir")
    clean_failure(run("pki", "show", "--data", blocker / "sub"), "data-dir")


def test_a_damaged_pki_is_a_clean_error(tmp_path: Path) -> None:
    ensure_pki(tmp_path)
    (tmp_path / "pki" / "manufacturer-ca.crt").unlink()
    clean_failure(issue(tmp_path, tmp_path / "p"), "pki-damaged")


def test_missing_options_are_usage_errors(tmp_path: Path) -> None:
    result = run("pki", "issue-factory-cert", "--data", tmp_path, "--mac", MAC)
    assert result.exit_code == 2 and "Missing option" in result.output


# --- export-ca --------------------------------------------------------------------------------


def test_export_ca_writes_the_ca_of_the_server_certificate(tmp_path: Path) -> None:
    out = tmp_path / "ca.pem"
    result = run("pki", "export-ca", "--data", tmp_path / "d", "--out", out)
    assert result.exit_code == 0, result.output
    ca = x509.load_pem_x509_certificate(out.read_bytes())
    pki = ensure_pki(tmp_path / "d")
    assert ca == pki.tls_ca.certificate
    pki.server_certificate.verify_directly_issued_by(ca)
    assert result.stdout == ""


def test_export_ca_to_standard_output(tmp_path: Path) -> None:
    result = run("pki", "export-ca", "--data", tmp_path, "--out", "-")
    assert result.exit_code == 0
    assert x509.load_pem_x509_certificate(result.stdout.encode()) == ensure_pki(tmp_path).tls_ca.certificate


def test_export_ca_refuses_an_unwritable_out(tmp_path: Path) -> None:
    clean_failure(run("pki", "export-ca", "--data", tmp_path, "--out", tmp_path / "no" / "ca.pem"), "cannot-write")


# --- show -------------------------------------------------------------------------------------


def test_show_lists_the_cas(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, key_type="rsa-2048", hostnames=["enroll.lab.example"])
    result = run("pki", "show", "--data", tmp_path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in ("TLS CA", "Server certificate", "Device CA", "Manufacturer CA"):
        assert title in out
    for ca in (pki.tls_ca, pki.device_ca, pki.manufacturer_ca):
        assert ca.thumbprint in out and ca.subject.rfc4514_string() in out
    assert thumbprint(pki.server_certificate) in out
    assert out.count("rsa-2048") == 4 and "enroll.lab.example" in out
    assert "0 revoked" in out and "valid" in out
    assert ensure_pki(tmp_path).changes == []  # show changes nothing (the host names stay)


def test_show_creates_a_pki_and_lists_trusted_manufacturers_and_warnings(tmp_path: Path) -> None:
    result = run("pki", "show", "--data", tmp_path / "new")
    assert result.exit_code == 0 and (tmp_path / "new" / "pki" / "tls-ca.crt").exists()
    assert "ecdsa-p256" in result.stdout
    trusted = tmp_path / "new" / "pki" / "trusted-manufacturers"
    (trusted / "lonely.pem").write_bytes((tmp_path / "new" / "pki" / "device-ca.crt").read_bytes())
    result = run("pki", "show", "--data", tmp_path / "new")
    assert "warning: trusted-manufacturers/lonely.pem has no lonely.crl" in result.stdout


# --- revoke -----------------------------------------------------------------------------------


def test_revoke_by_thumbprint_and_by_serial(tmp_path: Path) -> None:
    first = issue(tmp_path, tmp_path / "a", serial="S1").stdout.strip()
    second = issue(tmp_path, tmp_path / "b", serial="S2").stdout.strip()
    result = run("pki", "revoke", "--data", tmp_path, "--thumbprint", first.lower())
    assert result.exit_code == 0 and result.stdout == first + "\n"
    result = run("pki", "revoke", "--data", tmp_path, "--serial", "S2")
    assert result.exit_code == 0 and result.stdout == second + "\n"
    pki = ensure_pki(tmp_path)
    for name in ("a", "b"):
        assert pki.is_revoked(x509.load_pem_x509_certificate((tmp_path / f"{name}.crt").read_bytes()))
    assert "2 revoked" in run("pki", "show", "--data", tmp_path).stdout


def test_revoke_errors(tmp_path: Path) -> None:
    clean_failure(run("pki", "revoke", "--data", tmp_path, "--serial", "nobody"), "unknown-certificate")
    clean_failure(run("pki", "revoke", "--data", tmp_path, "--thumbprint", "12"), "invalid-thumbprint")
    for args in ([], ["--thumbprint", "A" * 64, "--serial", "S1"]):
        result = run("pki", "revoke", "--data", tmp_path, *args)
        assert result.exit_code == 2 and "exactly one of --thumbprint or --serial" in result.output


# --- help -------------------------------------------------------------------------------------


def test_help_texts_explain() -> None:
    result = run("--help")
    assert result.exit_code == 0 and "pki" in result.stdout
    result = run("pki", "--help")
    for command in ("issue-factory-cert", "export-ca", "show", "revoke"):
        assert command in result.stdout
    text = run("pki", "issue-factory-cert", "--help").stdout
    assert "PREFIX.key" in text and "0600" in text and "thumbprint" in text and "serialNumber" in text
    assert "--cacert" in run("pki", "export-ca", "--help").stdout
    assert "CRL" in run("pki", "revoke", "--help").stdout
    assert "fingerprint" in run("pki", "show", "--help").stdout
