"""The README's bench lab file ("Pointing enrollab at your phones") is a lab file enrollab takes,
and says what the chapter says it does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.errors import HarnessError, LabError
from harness.lab import parse_lab
from harness.physical.poe import PoePort

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_bench_lab_file_loads_with_each_reboot_method() -> None:
    chapter = README.read_text().split("## Pointing enrollab at your phones", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", chapter, re.S)
    assert toml is not None
    lab = parse_lab(toml[1])
    by_name = {d.name: d for d in lab.devices_for("lab")}
    assert {n: d.reboot for n, d in by_name.items()} == {"desk-1": "sip-notify", "desk-2": "poe",
                                                         "conference-room": "manual"}
    assert lab.devices_for("all") == lab.devices and lab.devices_for("sim") == ()
    assert dict(by_name["desk-1"].extra["sip"]) == {"port": 5060, "t1": 0.5}
    port = PoePort.from_lab(by_name["desk-2"].extra["poe"], "desk-2")
    assert (port.switch, port.group, port.port, port.community_env, port.off_seconds) == (
        "10.0.40.2", 1, 7, "POE_COMMUNITY", 5.0)
    assert by_name["desk-1"].serial == "21WZ51234567" and by_name["desk-1"].mac == "A4251B0C3D5E"


def test_boot_timeout_and_poe_tables_are_checked() -> None:
    lab = parse_lab('[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
                    'mac = "A4251B000001"\nip = "10.0.0.1"\nreboot = "sip-notify"\nboot_timeout = 90\n')
    assert lab.devices[0].extra["boot_timeout"] == 90
    for bad, says in (('boot_timeout = 0', "boot_timeout"), ('poe = {switch = "s", port = 1}', "community_env"),
                      ('poe = {switch = "s", port = 1, community_env = "not a name"}', "community_env")):
        with pytest.raises(LabError) as refused:
            parse_lab('[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.1.11.0.9"\n'
                      f'mac = "A4251B000001"\nip = "10.0.0.1"\nreboot = "poe"\n{bad}\n')
        assert any(says in problem for problem in refused.value.problems), refused.value.problems


def test_the_readme_bench_table_loads_and_its_files_must_exist(tmp_path: Path) -> None:
    """The chapter's `[network]` + `[bench]` block: the bench address defaults to the DHCP
    scope's, the DES name and port to what a J100 is built with, paths resolve beside the lab
    file; a missing certificate file and a lone des_cert are problems naming the field."""
    chapter = README.read_text().split("## Pointing enrollab at your phones", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```toml\n(.*?)```", chapter, re.S)[1]
    (tmp_path / "bench").mkdir()
    for name in ("des.crt", "des.key", "avaya-manufacturer-ca.pem"):
        (tmp_path / "bench" / name).write_text("-----BEGIN CERTIFICATE-----\n")
    lab = parse_lab(block, base=tmp_path)
    bench = lab.bench
    assert (bench.address, bench.des_name, bench.des_port, bench.files_name) == (
        "10.0.40.1", "des.avaya.com", 443, "files.enrollab.test")
    assert bench.des_cert == tmp_path / "bench" / "des.crt" and bench.missing_for_des() == []
    assert bench.manufacturer_ca == (tmp_path / "bench" / "avaya-manufacturer-ca.pem",)
    assert parse_lab("").bench.missing_for_des() == ["address", "des_cert", "des_key", "manufacturer_ca"]
    (tmp_path / "bench" / "des.key").unlink()
    with pytest.raises(LabError) as refused:
        parse_lab(block, base=tmp_path)
    assert any("bench.des_key: 'bench/des.key': no such file" in p for p in refused.value.problems), \
        refused.value.problems
    with pytest.raises(LabError) as alone:
        parse_lab('[bench]\ndes_cert = "bench/des.crt"\n', base=tmp_path)
    assert "bench.des_key: des_cert and des_key go together" in alone.value.message


def test_a_bench_server_ca_issues_the_des_certificate_and_must_hold_its_own_key(tmp_path: Path) -> None:
    """`[bench] server_ca` + `server_ca_key` stand in for des_cert/des_key, go together, and the
    key must be the CA's (a mismatch is a one-line error, not a TLS failure later)."""
    from server.pki.authority import CertificateAuthority
    from server.pki.keys import certificate_pem, private_key_pem

    root, other = CertificateAuthority.create("Bench Lab Root"), CertificateAuthority.create("Other")
    (tmp_path / "root.crt").write_bytes(certificate_pem(root.certificate))
    (tmp_path / "root.key").write_bytes(private_key_pem(root.key))
    (tmp_path / "other.key").write_bytes(private_key_pem(other.key))
    (tmp_path / "mca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    head = '[bench]\naddress = "10.213.0.1"\nmanufacturer_ca = "mca.pem"\nserver_ca = "root.crt"\n'
    bench = parse_lab(head + 'server_ca_key = "root.key"\n', base=tmp_path).bench
    assert bench.missing_for_des() == []
    key, cert = bench.server_issuer()
    assert cert == root.certificate
    with pytest.raises(LabError) as alone:
        parse_lab(head, base=tmp_path)
    assert "bench.server_ca_key: server_ca and server_ca_key go together" in alone.value.message
    mismatched = parse_lab(head + 'server_ca_key = "other.key"\n', base=tmp_path).bench
    with pytest.raises(HarnessError, match="server_ca_key is not the key of server_ca"):
        mismatched.server_issuer()
