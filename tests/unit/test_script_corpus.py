"""The 24 real files of the corpus (tests/data/corpus-avaya-settings/SOURCES.md), interpreted as phones would.

Each test names the corpus file (C-nn) and the research section whose behaviour it shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.script import ScriptResult, Variables, interpret
from simulators.script_problems import PROBLEMS

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus-avaya-settings"
MAC_23 = "C8:1F:EA:9B:67:C0"  # the phone whose per-MAC file is C-23


def corpus(number: int) -> bytes:
    (path,) = CORPUS.glob(f"{number:02d}_*.txt")
    return path.read_bytes()


def run(
    first: int, variables: Variables, served: dict[str, int] | None = None, name: str = "first.txt"
) -> ScriptResult:
    """Interpret corpus file `first` as `name`; `served` maps other paths on the server to corpus files."""
    server = {name: corpus(first), **{path: corpus(number) for path, number in (served or {}).items()}}
    return interpret(name, server.get, variables)


def fetched(result: ScriptResult) -> list[tuple[str, bool]]:
    return [(record.path, record.found) for record in result.trace]


def problems(result: ScriptResult) -> list[tuple[int | None, str]]:
    return [(problem.line, problem.kind) for problem in result.problems]


def j1xx(model4: str, hwvers: int = 1, mac: str = MAC_23) -> Variables:
    return Variables.for_phone(
        model4, model=f"{model4}D02A", mac=mac, serial="18WZ504009XT", hwvers=hwvers, SIG=2, SIG_IN_USE="SIP"
    )


def test_corpus_is_vendored_byte_for_byte() -> None:
    files = sorted(CORPUS.glob("[0-9][0-9]_*.txt"))
    assert len(files) == 24
    assert (CORPUS / "SOURCES.md").is_file()
    assert len(corpus(12)) == 972412  # CRLF and Windows-1252 intact
    assert corpus(6).count(b"\r\n") == corpus(6).count(b"\n")
    assert not corpus(1).endswith(b"\n")


# C-01: J100Supgrade.txt ends with two GETs (§3: GET is a tail call)


def test_c01_the_mac_file_is_asked_for_only_when_46xxsettings_is_missing() -> None:
    with_settings = run(1, j1xx("J179"), {"46xxsettings.txt": 4, "c81fea9b67c0.txt": 23}, "J100Supgrade.txt")
    assert fetched(with_settings) == [("J100Supgrade.txt", True), ("46xxsettings.txt", True)]
    assert with_settings.params["APPNAME"] == "FW_S_J179_R4_1_1_0_7.bin"
    assert with_settings.params["JEM24_APPNAME"] == "FW_JEM24_R1_0_1_0_23.bin"
    assert with_settings.params["SYSTEM_LANGUAGE"] == "Mlf_J189_Polish.xml"  # from C-04

    without = run(1, j1xx("J179"), {"c81fea9b67c0.txt": 23}, "J100Supgrade.txt")
    assert fetched(without) == [("J100Supgrade.txt", True), ("46xxsettings.txt", False), ("c81fea9b67c0.txt", True)]
    assert without.params["FORCE_SIP_USERNAME"] == "4212"  # from C-23
    assert without.files == ["J100Supgrade.txt", "c81fea9b67c0.txt"]


@pytest.mark.parametrize(
    ("model4", "hwvers", "appname"),
    [
        ("J129", 1, "FW_S_J129_R4_1_1_0_7.bin"),
        ("J189", 2, "FW_S_J189_R4_1_1_0_7.bin"),  # IF $HWVERS SEQ 1/2/3 GOTO J189_SW_OLD
        ("J189", 4, "FW_S_J189A_R4_1_1_0_7.bin"),
    ],
)
def test_c01_model_and_hardware_dispatch(model4: str, hwvers: int, appname: str) -> None:
    result = run(1, j1xx(model4, hwvers))
    assert result.params["APPNAME"] == appname
    assert ("JEM24_APPNAME" in result.params) is (model4 == "J189")


def test_c01_an_unlisted_model_changes_no_firmware() -> None:
    result = run(1, Variables.for_phone("K175", mac=MAC_23))
    assert result.params == {}
    assert [path for path, _ in fetched(result)] == ["first.txt", "46xxsettings.txt", "c81fea9b67c0.txt"]


# C-02 / C-03: SET HTTPDIR inside the upgrade file (§1)


def test_c02_httpdir_moves_the_settings_file_into_j100() -> None:
    result = run(2, j1xx("J179"), {"J100/46xxsettings.txt": 4, "46xxsettings.txt": 11}, "J100Supgrade.txt")
    assert fetched(result) == [("J100Supgrade.txt", True), ("J100/46xxsettings.txt", True)]
    assert result.params["APPNAME"] == "FW_S_J179_R4_1_11_0_9.bin"
    assert result.params["HTTPSRVR"] == "kesicand.github.io"


@pytest.mark.parametrize("model4", ["J129", "J169", "J189"])
def test_c03_hash_set_lines_are_comments_so_no_firmware_is_set(model4: str) -> None:
    result = run(3, j1xx(model4, hwvers=1))
    assert result.params == {"HTTPDIR": "J100"}
    assert fetched(result) == [("first.txt", True), ("J100/46xxsettings.txt", False)]
    assert problems(result) == [(48, "file-not-found")]


def test_c04_a_set_only_settings_file() -> None:
    result = run(4, j1xx("J189"))
    assert result.params == {
        "HTTPSRVR": "kesicand.github.io",
        "HTTPDIR": "J100",
        "SNTPSRVR": "194.146.251.100",
        "ENABLE_WEBSERVER": "1",
        "FORCE_WEB_ADMIN_PASSWORD": "Admin99!",
        "ADMIN_PASSWORD": "Admin99!",
        "ENABLE_TIMEZONE": "1",
        "TIMEZONE": "Europe/Warsaw",
        "ADMINTIMEFORMAT": "1",
        "DATEFORMAT": "%d/%m",
        "SYSTEM_LANGUAGE": "Mlf_J189_Polish.xml",
    }
    assert result.problems == []


# C-05: 96x1Supgrade.txt, labels starting with digits, a nested IF $HWVERS


@pytest.mark.parametrize(
    ("model4", "hwvers", "expected"),
    [
        ("9608", 3, {"APPNAME": "S9608_11_SALKRR7_1_4_0r11.bin"}),
        (
            "9608",
            1,
            {"APPNAME": "S96x1_SALBR7_1_4_0r11_V4r83.tar", "RFSNAME": "S96x1_UKR_V41r3618_V41r3618.tar"},
        ),
        ("9601", 1, {"APPNAME": "S96x1_SALBR7_1_4_0r11_V4r83.tar", "RFSNAME": "S96x1_UKR_V41r3618_V41r3618.tar"}),
        ("J179", 1, {}),
    ],
)
def test_c05_96x1_upgrade(model4: str, hwvers: int, expected: dict[str, str]) -> None:
    result = run(5, Variables.for_phone(model4, hwvers=hwvers))
    assert result.params == expected
    assert fetched(result)[-1] == ("46xxsettings.txt", False)


# C-06: CRLF, lower-case goto, double spaces, a label with trailing spaces, a value with a trailing space


def test_c06_sha2_phone_gets_the_sha256_application() -> None:
    phone = Variables.for_phone(
        "9620", model="9620D02L", SHA2CAPABLE=1, BOOTNAME="hb96xxua3_00.bin", APPNAME="SIP96xx_2_6_12_1.bin", SIG=2
    )
    result = run(6, phone)
    assert result.params == {"APPNAME": "SIP96xx_2_6_17_0_SHA256.bin"}
    assert fetched(result) == [("first.txt", True), ("46xxsettings.txt", False)]
    assert problems(result) == [(108, "file-not-found")]


def test_c06_an_h323_phone_goes_straight_to_the_settings_file() -> None:
    result = run(6, Variables.for_phone("9620", model="9620D01A", SIG=1))
    assert result.params == {}
    assert fetched(result) == [("first.txt", True), ("46xxsettings.txt", False)]


# C-07: merged H.323 + SIP script, a cross-section jump and a missing label


def test_c07_goto_to_a_missing_label_ends_the_pass() -> None:
    result = run(7, Variables.for_phone("9670", SIG=1, VPNACTIVE=1))
    assert result.params == {}
    assert fetched(result) == [("first.txt", True)]
    assert [(p.line, p.kind, p.detail) for p in result.problems] == [(62, "label-not-found", "PHONEAPP9670")]


def test_c07_vpnactive_jumps_forward_into_the_sip_section() -> None:
    result = run(7, Variables.for_phone("9620", SIG=1, VPNACTIVE=1))
    sip_section = corpus(7).splitlines().index(b"# SIP_SECTION") + 1
    assert result.params == {"APPNAME": "SIP96xx_2_6_6_0.bin"}
    assert [(r.path, r.line) for r in result.trace[1:]] == [("46xxsettings.txt", 160)]
    assert result.trace[1].line is not None and result.trace[1].line > sip_section


def test_c07_an_h323_phone_without_vpn_stays_in_its_section() -> None:
    result = run(7, Variables.for_phone("9620", SIG=1, VPNACTIVE=0, BOOTNAME="hb96xxua3_0_00.bin"))
    assert result.params == {"APPNAME": "hb96xxua3_1_03_S.bin"}
    assert [(r.path, r.line) for r in result.trace[1:]] == [("46xxsettings.txt", 84)]


# C-08: a 16xx upgrade a user edited: repeated SET APPNAME, IF on $APPNAME after SET, $PHONECC


def test_c08_the_last_set_appname_wins_and_if_reads_the_set_value() -> None:
    phone = Variables.for_phone("1603", BOOTNAME="hb1603ua1_1000.bin", APPNAME="ha1603ua1_3200.bin")
    result = run(8, phone)
    # `IF $APPNAME SEQ ha1603ua1_3200.bin` would jump on the phone's own APPNAME, but the SET just
    # before it changed APPNAME, so the script goes on to the last SET APPNAME.
    assert [s.value for s in result.sets if s.name == "APPNAME"] == [
        "hb1603ua1_2200.bin",
        "hb1603ua1_2200.bin",
        "hb1603ua1_2200.bin",
        "sa1603ua1_0100.bin",
    ]
    assert result.params == {
        "APPNAME": "sa1603ua1_0100.bin",
        "SKIPFWDOWNGRADE": "0",
        "CONFIG_SERVER_PATH": "http://10.2.248.2/",
        "BACKUP_APPNAME": "hb1603ua1_2200.bin",
    }
    assert fetched(result)[-1] == ("16xxsettings.txt", False)


def test_c08_the_comcode_selects_the_1603_branch() -> None:
    result = run(8, Variables.for_phone("1608", PHONECC="700458508", BOOTNAME="ha1603ua1_3200.bin"))
    assert result.params == {"APPNAME": "sa1603ua1_0100.bin"}


def test_c08_a_phone_without_phonecc_ignores_those_ifs() -> None:
    result = run(8, Variables.for_phone("9608"))
    assert result.params == {}
    assert problems(result) == [(33, "undefined-variable"), (34, "undefined-variable"), (35, "undefined-variable")]


# C-09 / C-10 / C-11: IP Office auto-generated files and the user's edits


def test_c09_c10_differential_trust_store_on_a_j129() -> None:
    original, edited = run(9, j1xx("J129")), run(10, j1xx("J129"))
    assert original.params["TRUSTCERTS"] == "WebRootCA.pem"
    assert "TRUSTCERTS" not in edited.params
    assert {k: v for k, v in original.params.items() if k != "TRUSTCERTS"} == edited.params
    assert original.problems == []
    assert [(p.line, p.kind, p.detail) for p in edited.problems] == [
        (44, "label-with-spaces", "TRUSTCERTS WebRootCA.pem")
    ]


def test_c09_c10_differential_trust_store_on_an_h323_9608() -> None:
    phone = Variables.for_phone("9608", SIG=1, SIG_IN_USE="H323")
    original, edited = run(9, phone), run(10, phone)
    assert original.params["TRUSTCERTS"] == "Root-CA-0206106A.pem"
    assert "TRUSTCERTS" not in edited.params
    assert original.params["SCREENSAVER"] == "9608scr.jpg"


def test_c09_a_commented_out_label_cuts_the_softphone_short_but_c11_does_not() -> None:
    phone = Variables.for_phone("acm", SIG_IN_USE="SIP")
    cut, clean = run(9, phone), run(11, phone)
    assert [(p.line, p.kind, p.detail) for p in cut.problems] == [(118, "label-not-found", "EQNXAUTOGENERATEDSETTINGS")]
    assert "SETTINGS_CHECK_INTERVAL" not in cut.params
    assert clean.params["SETTINGS_CHECK_INTERVAL"] == "1"
    assert clean.params["ENABLE_OUTLOOK_ADDON"] == "1"


def test_c11_a_value_on_the_line_after_its_set_is_not_applied() -> None:
    result = run(11, Variables.for_phone("K175", SIG_IN_USE="SIP"))
    assert "OBSCURE_PREFERENCES" not in result.params
    assert problems(result) == [(254, "set-without-value"), (255, "orphan-value")]
    assert result.params["UPGRADE_POLICY"] == "0"


def test_c11_a_clean_j129_run() -> None:
    result = run(11, j1xx("J129"))
    assert result.problems == []
    assert result.params["SIP_CONTROLLER_LIST"] == "10.8.61.20:5061;transport=tls"
    assert result.params["SYSTEM_LANGUAGE"] == "Mlf_J129_English.xml"
    assert result.params["CONFERENCE_TYPE"] == "1"
    assert result.params["PHNOL"] == ""


# C-12 / C-13 / C-14: Avaya's own templates (Windows-1252, CRLF, 1 MB)


def test_c12_the_1mb_windows_1252_template_parses() -> None:
    assert sum(1 for line in corpus(12).splitlines() if not line.isascii()) > 100
    result = run(12, j1xx("J169"))
    assert result.params == {
        "SYSTEM_LANGUAGE": "Mlf_J169_J179_Russian.xml",
        "LANGUAGES": "Mlf_J169_J179_Russian.xml",
        "ISO_SYSTEM_LANGUAGE": "ru_RU",
    }
    assert result.problems == []


def test_c12_an_h323_9608_in_group_3_gets_its_language_files() -> None:
    result = run(12, Variables.for_phone("9608", group=3, SIG=1, SIG_IN_USE="H323"))
    assert result.params["LANG1FILE"] == "mlf_96x1_v214_russian.txt"
    assert result.params["LANG2FILE"] == "mlf_96x1_v214_russian.txt"
    assert result.problems == []


def test_c13_trailing_spaces_after_values_are_dropped() -> None:
    result = run(13, j1xx("J129"))
    assert result.params["QLEVEL_MIN"] == "5"
    assert result.params["SIG"] == "2"
    assert result.params["PHNCC"] == "86"
    assert result.params["DATEFORMAT"] == "%Y/%m/%d"
    assert result.params["TIMEZONE"] == "Asia/Shanghai"
    assert result.problems == []


def test_c14_labels_with_trailing_hashes_and_empty_values() -> None:
    result = run(14, Variables.for_phone("3631"))
    assert problems(result) == [
        (196, "set-without-value"),
        (208, "set-without-value"),
        (211, "set-without-value"),
        (215, "set-without-value"),
    ]
    assert "PHNCC" not in result.params
    assert result.params["PHNOL"] == "9"
    assert result.params["SIPPORT"] == "5060"
    assert result.params["SIPPROXYSRVR"] == "192.168.202.75:5060;transport=UDP"


def test_c14_per_model_sections_are_reached_through_lower_case_goto() -> None:
    on_9620 = run(14, Variables.for_phone("9620", SIG=2))
    on_9601 = run(14, Variables.for_phone("9601"))  # `IF $MODEL4 SEQ 9601L` never matches
    assert on_9620.params["WMLHOME"] == "http://192.168.202.76/landing.wml"
    assert "WMLHOME" not in on_9601.params


# C-15 … C-18: SET-only open-SIP files


def test_c15_quoted_values() -> None:
    result = run(15, Variables.for_phone("9640"))
    assert result.params["PHNLD"] == ""
    assert result.params["PSTN_VM_NUM"] == "*97"
    assert result.params["SUBSCRIBE_LIST_NON_AVAYA"] == "mwi"
    assert result.params["LOGOS"] == "YourLogo=http://YOUR_SIP_SERVER.com/logo217130.jpg"
    assert result.params["DSTSTART"] == "2SunMar2L"
    assert result.problems == []


def test_c16_placeholders_with_spaces_are_kept_and_reported() -> None:
    result = run(16, Variables.for_phone("9640"))
    assert result.params["SIPDOMAIN"] == "<DOMAIN OF THE HOIP SERVER IN THE EMAIL>"
    assert result.params["SIP_CONTROLLER_LIST"] == "<IPv4 ADDRESS OF THE PEER>:5160;transport=udp"
    assert result.params["SIPPORT"] == "5160"
    assert not any("\r" in value for value in result.params.values())
    assert {p.kind for p in result.problems} == {"unquoted-value-with-spaces"}
    assert len(result.problems) == 7


def test_c17_quoted_values_with_spaces_and_separators() -> None:
    result = run(17, Variables.for_phone("J179"))
    assert result.params["DISPLAY_NAME"] == "Chef Telefon"
    assert result.params["PHONEKEY"] == "Key=5;Type=autodial;Name=autodial;attr1=6837"
    assert result.params["PHNOL"] == ""
    assert result.params["GMTOFFSET"] == "+1:00"
    assert result.params["HTTPDIR"] == "/ccf954a1fa8e/"
    assert result.params["FILE_SERVER_URL"] == "http://192.168.178.1/ccf954a1fa8e/"
    assert result.problems == []


def test_c17_its_httpdir_would_move_a_later_get() -> None:
    chain = {"first.txt": b"GET 46xxsettings.txt\n", "46xxsettings.txt": corpus(17) + b"\nGET $MACADDR.txt\n"}
    result = interpret("first.txt", chain.get, Variables.for_phone("J179", mac="CC:F9:54:A1:FA:8E"))
    assert fetched(result)[-1] == ("ccf954a1fa8e/ccf954a1fa8e.txt", False)


def test_c18_single_hash_prose_lines_are_comments() -> None:
    result = run(18, Variables.for_phone("9611"))
    assert result.problems == []
    assert result.params["DIALPLAN"] == "911|[3567]XXX|9999|9Z1XXXXXXXXXX"
    assert result.params["GMTOFFSET"] == "-5:00"
    assert result.params["PSTN_VM_NUM"] == "YOUR_VOICEMAIL_NUMBER"
    assert {"CONFIG_SERVER", "MSGNUM", "ENABLE_MODIFY_CONTACTS"}.isdisjoint(result.params)


# C-19 … C-23: a production site's hand-written files


def test_c19_a_mid_file_get_abandons_the_rest_when_the_mac_file_exists() -> None:
    result = run(19, j1xx("J129"), {"c81fea9b67c0.txt": 23})
    assert [(r.path, r.found, r.line) for r in result.trace] == [
        ("first.txt", True, None),
        ("c81fea9b67c0.txt", True, 136),
    ]
    assert result.files == ["first.txt", "c81fea9b67c0.txt"]
    assert result.params["TFTP_SERVER"] == "10.2.248.2"  # inline ## comment dropped
    assert result.params["LANGUAGE_IN_USE"] == "Latin American Spanish"
    assert result.params["EXTENSION_ON_TOP_LINE"] == "2"  # the bare `EXTENSION_ON_TOP_LINE 0` is a comment
    assert result.params["FILE_SERVER_URL"] == "http:10.2.248.2"
    assert result.params["CALLFWDSTAT"] == "3"
    assert result.params["FORCE_SIP_USERNAME"] == "4212"
    assert "SIP-TRANSPORT" not in result.params
    assert problems(result) == [(17, "invalid-name"), (36, "unquoted-value-with-spaces"), (112, "bare-parameter")]


def test_c19_without_the_mac_file_a_1603_reaches_the_second_get() -> None:
    result = run(19, Variables.for_phone("1603", mac=MAC_23, BOOTNAME="hb1603ua1_1000.bin"))
    assert result.params["APPNAME"] == "hb1603ua1_2200.bin"
    assert [(r.path, r.found, r.line) for r in result.trace[1:]] == [
        ("c81fea9b67c0.txt", False, 136),
        ("c81fea9b67c0.txt", False, 153),
    ]


def test_c20_read_only_and_misspelt_parameters() -> None:
    result = run(20, j1xx("J129"))
    assert result.params["SIG"] == "2"
    assert "BOOTNAME" not in result.params
    assert result.params["DNSSRVER"] == "cho-pbx02.lamundial.hn"  # unknown names are the phone's business
    assert result.params["GMTOFFSET"] == "-6:00"
    assert result.params["TIMEFORMAT"] == "0"
    assert result.params["DATESEPARATOR"] == "/"
    assert fetched(result)[-1] == ("001b4f4df24f.txt", False)
    assert ("read-only-parameter", "BOOTNAME hb1603ua1_340B.bin") in [(p.kind, p.detail) for p in result.problems]


def test_c21_the_phones_own_export_cannot_change_its_identity() -> None:
    result = run(21, j1xx("J179"))
    refused = [p.detail.split()[0] for p in result.problems if p.kind == "read-only-parameter"]
    assert refused == [
        "MODEL",
        "MODEL4",
        "MACADDR",
        "PHONECC",
        "HWVERS",
        "SHA2CAPABLE",
        "IPADD",
        "APPNAME_IN_USE",
        "SERIALNO",
    ]
    assert set(refused).isdisjoint(result.params)
    assert result.params["PHONESN"] == "18WZ504009XT"
    assert result.params["LAST_UPDATE"] == "2025-Dec-05 13:57:56"
    assert result.params["OPEN_SSL_VERSION"] == "GA0521.U2.HF4 Fips: 7.0.0f"
    assert result.params["PERSONALWAV"] == "9"
    assert result.params["ROUTERV6_IN_USE"] == ""
    assert len(result.params["LANGUAGES_RESOURCE_LIST"]) == 252


def test_c22_malformed_forms_are_reported_not_applied() -> None:
    result = run(22, j1xx("J129"), {"c81fea9b67c0.txt": 23})
    assert problems(result) == [
        (4, "set-equals-form"),
        (7, "set-equals-form"),
        (8, "set-equals-form"),
        (11, "set-equals-form"),
        (12, "set-equals-form"),
        (13, "set-equals-form"),
        (16, "set-equals-form"),
        (21, "set-equals-form"),
        (28, "set-colon-form"),
        (33, "unquoted-value-with-spaces"),
        (35, "unquoted-value-with-spaces"),
        (40, "bare-parameter"),
        (41, "bare-parameter"),
        (42, "bare-parameter"),
    ]
    assert {"TFTP_SERVER", "SIP_DEFAULT_PROXY", "SIPMODE", "SIP-TRANSPORT", "SET_TIME_ZONE"}.isdisjoint(result.params)
    assert result.params["WEB_USERNAME"] == "admin"
    assert result.params["ENABLE_SIP_USER_ID"] == "1"
    assert fetched(result)[-1] == ("c81fea9b67c0.txt", True)


def test_c23_the_per_mac_file() -> None:
    result = run(23, j1xx("J129"), name="c81fea9b67c0.txt")
    assert result.params["FORCE_SIP_USERNAME"] == "4212"
    assert result.params["FORCE_SIP_EXTENSION"] == "4212"
    assert result.params["SIP_CONTROLLER_LIST"] == "10.2.248.2:5060;transport=udp"
    assert result.params["DISPLAY_NAME"] == "4212"
    assert result.problems == []


def test_c24_an_sson_string_is_not_a_script() -> None:
    result = run(24, j1xx("J129"))
    assert result.params == {}
    assert problems(result) == [(1, "bare-parameter"), (3, "bare-parameter")]


@pytest.mark.parametrize("number", range(1, 25))
def test_every_corpus_file_runs_and_reports_only_catalogued_problems(number: int) -> None:
    for phone in (j1xx("J179"), Variables.for_phone("9608", SIG=1, SIG_IN_USE="H323"), Variables({})):
        result = run(number, phone)
        assert result.files[0] == "first.txt"
        assert {p.kind for p in result.problems} <= PROBLEMS.keys()
        assert all(name == name.upper() for name in result.params)
