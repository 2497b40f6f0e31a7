"""The lab file (harness.lab): the shipped examples load; every problem names the line and the field."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import fixtures
from harness.errors import LabError
from harness.lab import field_path, load_lab, locate, parse_lab
from simulators.capabilities import Capabilities


def problem(text: str, **kwargs: object) -> LabError:
    with pytest.raises(LabError) as caught:
        parse_lab(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


DEVICE = '[[devices]]\ndriver = "simulated"\n'
J179 = DEVICE + 'model = "J179"\nfirmware = "4.0"\n'  # lines 1-4
PHYSICAL = '[[devices]]\ndriver = "physical"\nmodel = "J179"\nfirmware = "4.0"\nmac = "A4251B000001"\n'  # 1-5

SIM = """\
[server]
embedded = true

[options]
seed = 3

[[devices]]
driver = "simulated"
model = "J179"
firmware = "4.1.11.0.9"

[[devices]]
driver = "simulated"
model = "K175"
firmware = "3.1"

[[devices]]
driver = "simulated"
model = "B199"
firmware = "4.x"
"""


def test_the_example_sim_lab_loads() -> None:
    path = fixtures.path("labs/example-sim.toml")
    lab = load_lab(path)
    assert lab.server.embedded and lab.server.url is None
    assert lab.options.seed == 1
    assert [d.id.split("#")[0] for d in lab.devices] == ["J179@4.1.11.0.9", "K165@1.1", "B199@1.0.1"]
    assert lab.devices[0].mac == "A4251B000001"
    assert lab.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert lab.devices_for("sim") == lab.devices and lab.devices_for("lab") == ()
    assert all(d.driver == "simulated" and d.serial for d in lab.devices)


def test_the_example_lab_loads_physical_devices() -> None:
    lab = load_lab(fixtures.path("labs/example-lab.toml"))
    assert not lab.server.embedded and lab.server.url == "https://des.lab.example:8080"
    assert lab.server.admin_password_env == "ENROLLAB_ADMIN_PASSWORD"
    assert lab.interface == "eth1"
    devices = lab.devices_for("lab")
    assert [(d.model, d.mac, d.ip, d.reboot) for d in devices] == [
        ("J179", "A4251B0C3D5E", "10.0.40.21", "sip-notify"),
        ("K175", "C81FEA112233", "10.0.40.22", "poe"),
        ("B199", "A4251B0C3D60", "10.0.40.23", "manual"),
    ]
    assert devices[0].serial == "21WZ51234567" and devices[1].serial is None
    assert devices[1].extra["poe"]["port"] == 7
    assert lab.devices_for("sim") == ()


def test_derived_identities_follow_the_seed_and_the_models_ouis() -> None:
    text = '[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.0.6"\ncount = 3\n'
    first = parse_lab(text).devices
    assert parse_lab(text).devices == first
    assert len({d.mac for d in first}) == 3 and len({d.serial for d in first}) == 3
    ouis = Capabilities.load().model("J179").ouis
    assert all(d.mac[:6] in ouis for d in first)
    assert [d.copy for d in first] == [0, 1, 2]
    other = parse_lab(text, seed=2).devices
    assert {d.mac for d in other}.isdisjoint({d.mac for d in first})


def test_names_are_normalised() -> None:
    lab = parse_lab(DEVICE + 'model = "HW-3 K175"\nfirmware = "R3.1"\nmac = "a4-25-1b-00-00-09"\n')
    assert lab.devices[0].id == "K175-HW3@3.1#A4251B000009"
    assert lab.server.embedded  # no [server]: the embedded one


def test_a_bad_firmware_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(SIM)
    with pytest.raises(LabError) as caught:
        load_lab(path)
    err = caught.value
    assert str(err) == f"{path}:20: devices[2].firmware: '4.x' is not a firmware version"
    assert (err.line, err.field, err.error) == (20, "devices[2].firmware", "invalid-lab")


ALLOWED_SIMULATED = "driver, model, firmware, mac, serial, name, count, faults"
ALLOWED_FAULTS = (
    "clock_skew, drop_connection, corrupt_firmware, ignore_group, ignore_http_refusal, accept_wildcards, "
    "report_firmware"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nembedded = true\nurl = "http://x.example"\n',
         "lab.toml:3: server.url: give either embedded = true or a url, not both"),
        ("[server]\nembedded = false\n",
         "lab.toml:2: server.embedded: embedded = false needs a url of a running server"),
        ('[server]\nurl = "ftp://x.example"\n',
         "lab.toml:2: server.url: 'ftp://x.example' is not an http(s) URL of an admin API"),
        ('[server]\ndata = "somewhere"\n',
         "lab.toml:2: server.data: only for a remote server (url): the embedded one has its own PKI"),
        ('[server]\nurl = "https://x.example"\nserver_ca = "nope.pem"\n',
         "lab.toml:3: server.server_ca: 'nope.pem': no such file"),
        ('[options]\nseed = "one"\n', "lab.toml:2: options.seed: 'one' is not an integer"),
        ("[options]\nsed = 1\n", "lab.toml:2: options.sed: unknown field; allowed here: seed, concurrency"),
        ('[[devices]]\ndriver = "robot"\nmodel = "J179"\nfirmware = "4.0"\n',
         "lab.toml:2: devices[0].driver: 'robot' is not one of 'simulated', 'physical'"),
        (DEVICE + 'model = "J179"\n', "lab.toml:1: devices[0].firmware: is required"),
        (DEVICE + 'model = "J999"\nfirmware = "1.0"\n', "lab.toml:3: devices[0].model: 'J999' is not a known model"),
        (J179 + 'mac = "zz"\n', "lab.toml:5: devices[0].mac: 'zz' is not a MAC address (PROTOCOL §1: 12 hex digits)"),
        (J179 + 'mac = "A4251B000001"\ncount = 2\n',
         "lab.toml:6: devices[0].count: a device with a fixed mac is one phone: drop count or mac"),
        (J179 + 'ip = "10.0.0.1"\n', f"lab.toml:5: devices[0].ip: unknown field; allowed here: {ALLOWED_SIMULATED}"),
        (PHYSICAL + 'reboot = "poe"\n', "lab.toml:1: devices[0].ip: is required"),
        (PHYSICAL + 'ip = "10.0.0.300"\nreboot = "poe"\n',
         "lab.toml:6: devices[0].ip: '10.0.0.300' is not an IP address"),
        (PHYSICAL + 'ip = "10.0.0.3"\nreboot = "ssh"\n',
         "lab.toml:7: devices[0].reboot: 'ssh' is not one of 'sip-notify', 'poe', 'manual'"),
        (J179 + '[devices.faults]\nreport_firmware = "x"\n',
         "lab.toml:6: devices[0].faults.report_firmware: 'x' is not a firmware version"),
        (J179 + "faults = { ignore_grup = true }\n",
         f"lab.toml:5: devices[0].faults.ignore_grup: unknown field; allowed here: {ALLOWED_FAULTS}"),
        ("[server\nembedded = true\n",
         "lab.toml:1: not TOML: Expected ']' at the end of a table declaration (column 8)"),
    ],
)
def test_problems_name_line_and_field(text: str, message: str) -> None:
    err = problem(text)
    assert err.message.startswith(message), err.message


def test_duplicate_macs_point_at_the_second() -> None:
    text = (
        '[[devices]]\ndriver = "simulated"\nmodel = "J179"\nfirmware = "4.0"\nmac = "A4251B000001"\n\n'
        '[[devices]]\ndriver = "simulated"\nmodel = "K175"\nfirmware = "3.1"\nmac = "a4:25:1b:00:00:01"\n'
    )
    assert str(problem(text)) == "lab.toml:11: devices[1].mac: A4251B000001 is also the MAC of devices[0]"


def test_every_problem_is_listed_in_line_order() -> None:
    err = problem(SIM.replace('model = "K175"', 'model = "K999"'))
    assert err.problems[0].startswith("lab.toml:14: devices[1].model: 'K999' is not a known model")
    assert err.problems[1] == "lab.toml:20: devices[2].firmware: '4.x' is not a firmware version"
    assert str(err).endswith("(and 1 more problem)")


def test_an_unreadable_lab_file_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError) as caught:
        load_lab(tmp_path / "missing.toml")
    assert caught.value.error == "lab-unreadable"
    (tmp_path / "latin1.toml").write_bytes(b'[options]\n# caf\xe9\n')
    with pytest.raises(LabError) as caught:
        load_lab(tmp_path / "latin1.toml")
    assert caught.value.line == 2 and "not UTF-8" in str(caught.value)


def test_a_remote_server_with_pki_files(tmp_path: Path) -> None:
    for name in ("m.key", "m.crt", "ca.pem"):
        (tmp_path / name).write_text("x")
    lab = parse_lab(
        '[server]\nurl = "https://des.example:8080"\nadmin_login = "ops"\nadmin_password_env = "DES_PW"\n'
        'manufacturer_key = "m.key"\nmanufacturer_cert = "m.crt"\nserver_ca = "ca.pem"\n',
        base=tmp_path,
    )
    assert lab.server.manufacturer_key == tmp_path / "m.key" and lab.server.server_ca == tmp_path / "ca.pem"
    assert (lab.server.admin_login, lab.server.admin_password_env) == ("ops", "DES_PW")
    half = problem('[server]\nurl = "https://des.example"\nmanufacturer_key = "m.key"\n', base=tmp_path)
    assert half.field == "server.manufacturer_cert" and "go together" in half.detail


def test_server_url_override_keeps_a_remote_labs_pki(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    remote = parse_lab('[server]\nurl = "https://a.example"\nserver_ca = "ca.pem"\n', base=tmp_path)
    moved = remote.with_server_url("https://b.example", "ops")
    assert (moved.server.url, moved.server.admin_login, moved.server.server_ca) == (
        "https://b.example", "ops", tmp_path / "ca.pem"
    )
    embedded = parse_lab("").with_server_url("http://c.example:8080")
    assert not embedded.server.embedded and embedded.server.url == "http://c.example:8080"


def test_locate_follows_tables_arrays_of_tables_and_dotted_keys() -> None:
    text = (
        "# comment\n"  # 1
        "[server]\n"  # 2
        'url = "x"\n'  # 3
        "[[devices]]\n"  # 4
        'model = "a"\n'  # 5
        'notes = """\n'  # 6
        "model = inside a string\n"  # 7
        '"""\n'  # 8
        "[[devices]]\n"  # 9
        "faults.ignore_group = true\n"  # 10
        "[devices.poe]\n"  # 11
        "port = 7\n"  # 12
    )
    assert locate(text, ["server", "url"]) == 3
    assert locate(text, ["devices", 0, "model"]) == 5
    assert locate(text, ["devices", 1, "model"]) == 9  # missing: where its table starts
    assert locate(text, ["devices", 1, "faults", "ignore_group"]) == 10
    assert locate(text, ["devices", 1, "poe", "port"]) == 12
    assert locate(text, ["options", "seed"]) is None
    assert field_path(["devices", 2, "faults", "clock_skew"]) == "devices[2].faults.clock_skew"
    assert field_path([]) == "(top level)"


# -- [network] (harness.lab_network.spec) ------------------------------------------------------------

NETWORK = """
[network]
interface = "eth1"
[network.dhcp]
address = "10.213.0.1"
pool = ["10.213.0.100", "10.213.0.199"]
option_242 = "HTTPSRVR=10.213.0.1,HTTPDIR=/j,DES_STAT=2"
[network.vlans.212]
pool = ["10.213.212.10", "10.213.212.20"]
[network.lldp]
file_servers = ["10.213.0.1"]
med_policy = { vlan = 212, dscp = 46 }
"""


def test_the_network_table_becomes_a_spec() -> None:
    lab = parse_lab(NETWORK)
    assert lab.interface == "eth1" and lab.network is not None
    assert lab.network.dhcp is not None and lab.network.dhcp.pool == ("10.213.0.100", "10.213.0.199")
    assert lab.network.dhcp.option_242 == "HTTPSRVR=10.213.0.1,HTTPDIR=/j,DES_STAT=2"
    assert set(lab.network.vlans) == {212}
    assert lab.network.lldp is not None and lab.network.lldp.med_vlan == 212
    assert lab.network.capture is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('"10.213.0.199"', '"10.213.1.199"'), "network.dhcp.pool: 10.213.1.199 is outside the scope's subnet"),
        (('["10.213.0.100", "10.213.0.199"]', '["10.213.0.199", "10.213.0.100"]'), "the pool runs backwards"),
        (("DES_STAT=2", "DES STAT=2"), "network.dhcp.option_242: not NAME=value pairs"),
        (("DES_STAT=2", "DES_STAT=" + "2" * 250), "bytes: one DHCP option holds at most 255"),
        (("vlans.212", "vlans.5000"), "'5000' is not a VLAN id"),
        (('address = "10.213.0.1"', 'address = "10.213.0.256"'), "network.dhcp.address"),
        (("interval", "x"), None),
    ],
)
def test_network_table_problems_name_the_field(change: tuple[str, str], expected: str | None) -> None:
    text = NETWORK.replace(*change)
    if expected is None:
        parse_lab(text)
        return
    with pytest.raises(LabError) as caught:
        parse_lab(text)
    assert expected in caught.value.message
