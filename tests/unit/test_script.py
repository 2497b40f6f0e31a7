"""The settings-script interpreter, one construct at a time.

Each test names the research section it shows (`/work/shared/research/avaya-settings-spec.md`,
"s2_6" = §2.6) or the decision D-n in `simulators/script.py`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from simulators.script import (
    Options,
    ScriptResult,
    Variables,
    interpret,
    interpret_async,
    steps,
)
from simulators.script_problems import PROBLEMS

MAC = "C8:1F:EA:9B:65:00"
PHONE = Variables.for_phone(
    "J179",
    model="J179D02A",
    mac=MAC,
    serial="18WZ504009XT",
    firmware="4.1.1.0.7",
    hwvers=1,
    SIG=2,
    SIG_IN_USE="SIP",
)


EMPTY: dict[str, bytes] = {}


def run(
    script: str | bytes,
    files: Mapping[str, str | bytes] | None = None,
    variables: Variables = PHONE,
    options: Options | None = None,
) -> ScriptResult:
    """Interpret `script` as `first.txt` on a server holding `files` as well."""
    server = {"first.txt": script, **(files or {})}
    data = {name: body.encode() if isinstance(body, str) else body for name, body in server.items()}
    return interpret("first.txt", data.get, variables, options)


def kinds(result: ScriptResult) -> list[str]:
    return [problem.kind for problem in result.problems]


def fetched(result: ScriptResult) -> list[tuple[str, bool]]:
    return [(record.path, record.found) for record in result.trace]


# §2.2 line classification


def test_s2_2_only_keyword_lines_are_statements() -> None:
    result = run("#SET A 1\n#PBX server\n#\n##SET B 2\nSET C 3\n")
    assert result.params == {"C": "3"}
    assert result.problems == []


def test_s2_2_single_hash_without_space_is_not_a_label() -> None:
    result = run("GOTO X\n#X\nSET A 1\n# X\nSET B 2\n")
    assert result.params == {"B": "2"}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("SET_TIME_ZONE GMT-6", "bare-parameter"),
        ("EXTENSION_ON_TOP_LINE 0", "bare-parameter"),
        ("MCIPADD=10.0.0.1,MCPORT=1719", "bare-parameter"),
        ("  SET A 1", "indented-statement"),
        ("\t# LABEL", "indented-statement"),
        ('"ESMENABLED,ESMSRVR"', "orphan-value"),
        ("this file sets the phones up", "stray-text"),
        ("GOTO", "stray-text"),
    ],
)
def test_s2_2_comment_lines_that_look_like_statements_are_reported(line: str, kind: str) -> None:
    result = run(f"SET BEFORE 1\n{line}\nSET AFTER 2\n")
    assert result.params == {"BEFORE": "1", "AFTER": "2"}
    assert [(p.line, p.kind, p.detail) for p in result.problems] == [(2, kind, line.strip())]


def test_s2_2_blank_and_indented_comment_lines_are_not_reported() -> None:
    assert run("   \n\t\n   ## note\n").problems == []


def test_d1_a_tab_may_follow_the_keyword() -> None:
    result = run("SET\tA 1\nGET\tnext.txt\n", {"next.txt": "SET B 2"})
    assert result.params == {"A": "1", "B": "2"}


# §2.3 invalid statements are ignored, never fatal


def test_s2_3_malformed_statements_are_reported_and_the_file_goes_on() -> None:
    result = run("SET \nIF $MODEL4 \nGOTO \nGET \nIF $MODEL4 SEQ J179 J100 GOTO L\nSET A 1\n")
    assert result.params == {"A": "1"}
    assert kinds(result) == ["malformed-set", "malformed-if", "malformed-goto", "malformed-get", "malformed-if"]


# §2.4 case


def test_s2_4_keywords_labels_and_names_are_case_insensitive() -> None:
    result = run("set appname a.bin\nif $model4 seq J179 goto Jump\nSET B 2\n# JUMP\nGet next.txt\n", {"next.txt": ""})
    assert result.params == {"APPNAME": "a.bin"}
    assert fetched(result) == [("first.txt", True), ("next.txt", True)]


def test_s2_4_seq_compares_without_case() -> None:
    result = run("IF $SIG_IN_USE SEQ sip GOTO L\nSET SKIPPED 1\n# L\nSET A 1\n")
    assert result.params == {"A": "1"}


def test_s2_4_a_lower_case_set_overrides_an_upper_case_one() -> None:
    result = run("SET Dialplan 1\nset DIALPLAN 2\n")
    assert result.params == {"DIALPLAN": "2"}


# §2.5 whitespace


def test_s2_5_runs_of_blanks_and_trailing_blanks_are_ignored() -> None:
    script = "SET  \t CALLFWDSTAT \t 3 \t\nIF  $MODEL4\t SEQ  J179   goto   L  \nSET SKIPPED 1\n# L   \nSET B 2 \n"
    result = run(script)
    assert result.params == {"CALLFWDSTAT": "3", "B": "2"}
    assert result.problems == []


# §2.6 quoting, D-6, D-7


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('SET PHNLD ""', ""),
        ('SET DISPLAY_NAME "Chef Telefon"', "Chef Telefon"),
        ('SET PHONEKEY "Key=5;Type=autodial;Name=autodial;attr1=6837"', "Key=5;Type=autodial;Name=autodial;attr1=6837"),
        ('SET SIPPORT "5060"', "5060"),
        ('SET X "a ## b"', "a ## b"),
        ('SET X "14087803999"   # Username', "14087803999"),
        ('SET X "1"  ## note', "1"),
        ("SET DIALPLAN 911|[3567]XXX|9999", "911|[3567]XXX|9999"),
        ("SET GMTOFFSET +1:00", "+1:00"),
    ],
)
def test_s2_6_values(line: str, value: str) -> None:
    result = run(line)
    assert list(result.params.values()) == [value]
    assert result.problems == []


def test_d7_an_unquoted_value_with_spaces_is_the_rest_of_the_line() -> None:
    result = run("SET LANGUAGE_IN_USE Latin American  Spanish   ## comment\n")
    assert result.params == {"LANGUAGE_IN_USE": "Latin American  Spanish"}
    assert [(p.kind, p.detail) for p in result.problems] == [("unquoted-value-with-spaces", "Latin American  Spanish")]


def test_s2_6_an_unterminated_quote_ignores_the_statement() -> None:
    result = run('SET A 1\nSET A "2\n')
    assert result.params == {"A": "1"}
    assert kinds(result) == ["unterminated-quote"]


def test_d6_text_after_a_closing_quote_is_reported_and_dropped() -> None:
    result = run('SET A "1" 2\n')
    assert result.params == {"A": "1"}
    assert [(p.kind, p.detail) for p in result.problems] == [("text-after-quoted-value", "2")]


def test_s2_6_curly_quotes_are_not_quotes() -> None:
    result = run("SET MYCERTCN \u201cAvaya phone\u201d\n")
    assert result.params == {"MYCERTCN": "\u201cAvaya phone\u201d"}
    assert set(kinds(result)) == {"smart-quotes", "unquoted-value-with-spaces"}


# §2.7 length limits, D-11


def test_s2_7_a_value_over_255_characters_is_ignored() -> None:
    result = run(f'SET OK {"x" * 255}\nSET LONG {"x" * 256}\nSET QUOTED "{"y" * 255}"\n')
    assert set(result.params) == {"OK", "QUOTED"}
    assert [(p.kind, p.line) for p in result.problems] == [("value-too-long", 2)]


def test_s2_7_vantage_allows_1024_characters_of_trustcerts_only() -> None:
    script = f"SET TRUSTCERTS {'c' * 1024}\nSET TRUSTCERTS2 {'c' * 256}\n"
    j100 = run(script)
    vantage = run(script, options=Options.vantage())
    assert "TRUSTCERTS" not in j100.params
    assert vantage.params == {"TRUSTCERTS": "c" * 1024}
    assert kinds(vantage) == ["value-too-long"]


def test_d11_long_template_names_are_kept_but_not_endless_ones() -> None:
    long_name = "CENTRALIZED_PERSONAL_CONTACTS_REFRESH_INTERVAL"  # 46 characters, Avaya 2022 template
    result = run(f"SET {long_name} 60\nSET {'N' * 65} 1\n")
    assert result.params == {long_name: "60"}
    assert kinds(result) == ["name-too-long"]


def test_s2_7_the_96x1_h323_name_limit_is_30() -> None:
    result = run(f"SET {'N' * 30} 1\nSET {'M' * 31} 1\n", options=Options.h323_96x1())
    assert list(result.params) == ["N" * 30]
    assert kinds(result) == ["name-too-long"]


# §2.8 bytes, §2.9 line endings


def test_s2_8_windows_1252_comments_are_harmless() -> None:
    script = b"## \x93smart quotes\x94 \xa0 \xae\r\n#3 \xe9t\xe9\r\nSET A 1\r\n"
    result = run(script)
    assert result.params == {"A": "1"}
    assert result.problems == []


def test_d2_a_windows_1252_value_is_read_and_reported() -> None:
    result = run(b"SET COUNTRY Espa\xf1a\n")
    assert result.params == {"COUNTRY": "Espa\u00f1a"}
    assert kinds(result) == ["not-utf8"]


def test_d2_a_utf8_value_is_kept() -> None:
    result = run('SET DISPLAY_NAME "\u0422\u0435\u043b\u0435\u0444\u043e\u043d"\n')
    assert result.params == {"DISPLAY_NAME": "\u0422\u0435\u043b\u0435\u0444\u043e\u043d"}


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_s2_9_line_endings_and_no_final_newline(newline: bytes) -> None:
    script = newline.join([b"GOTO L", b"SET SKIPPED 1", b"# L", b"SET A 1", b"SET B 2"])
    result = run(script)
    assert result.params == {"A": "1", "B": "2"}
    assert result.problems == []


def test_d3_a_utf8_bom_does_not_hide_the_first_statement() -> None:
    assert run(b"\xef\xbb\xbfSET A 1\n").params == {"A": "1"}


# §2.10 inline comments, D-6


def test_d6_inline_comments_after_values_get_and_labels() -> None:
    script = (
        "SET TFTP_SERVER 10.2.248.2       ## server\n"
        "SET SECRET a##b\n"
        "IF $MODEL4 SEQ J179 GOTO L  ## per model\n"
        "SET SKIPPED 1\n"
        "# L                         ##  \n"
        "GET $MACADDR.txt            ## per phone\n"
    )
    result = run(script, {"c81fea9b6500.txt": ""})
    assert result.params == {"TFTP_SERVER": "10.2.248.2", "SECRET": "a##b"}
    assert fetched(result)[-1] == ("c81fea9b6500.txt", True)
    assert result.problems == []


# §3 SET


def test_s3_a_later_set_overrides_and_every_set_is_recorded() -> None:
    result = run("SET APPNAME a.bin\nSET OTHER 1\nSET APPNAME b.bin\n")
    assert result.params == {"APPNAME": "b.bin", "OTHER": "1"}
    assert list(result.params) == ["APPNAME", "OTHER"]  # D-20: first position, last value
    assert [(s.file, s.line, s.name, s.value) for s in result.sets] == [
        ("first.txt", 1, "APPNAME", "a.bin"),
        ("first.txt", 2, "OTHER", "1"),
        ("first.txt", 3, "APPNAME", "b.bin"),
    ]


@pytest.mark.parametrize("line", ["SET PHNCC", "SET PHNCC ", "SET PHNCC    ## none"])
def test_d8_a_set_without_value_keeps_the_earlier_value(line: str) -> None:
    result = run(f"SET PHNCC 1\n{line}\n")
    assert result.params == {"PHNCC": "1"}
    assert [(p.kind, p.detail) for p in result.problems] == [("set-without-value", "PHNCC")]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("SET TFTP_SERVER=10.2.248.2", "set-equals-form"),
        ("SET TFTP_SERVER = 10.2.248.2", "set-equals-form"),
        ("SET SIP-Transport: UDP", "set-colon-form"),
        ("SET SIP-Transport UDP", "invalid-name"),
        ('SET "QUOTED" 1', "invalid-name"),
    ],
)
def test_d9_d10_malformed_set_forms_are_ignored(line: str, kind: str) -> None:
    result = run(line)
    assert result.params == {}
    assert kinds(result) == [kind]


# §3 GOTO and labels


def test_s3_goto_jumps_forward_to_the_first_matching_label() -> None:
    result = run("GOTO L\nSET A 1\n# L\nSET B 2\n# L\nSET C 3\n")
    assert result.params == {"B": "2", "C": "3"}


def test_s3_goto_to_a_missing_label_skips_the_rest_of_the_file() -> None:
    result = run("SET A 1\nGOTO NOWHERE\nSET B 2\nGET next.txt\n", {"next.txt": "SET C 3"})
    assert result.params == {"A": "1"}
    assert fetched(result) == [("first.txt", True)]
    assert [(p.line, p.kind, p.detail) for p in result.problems] == [(2, "label-not-found", "NOWHERE")]


def test_d15_goto_never_jumps_backward() -> None:
    result = run("# TOP\nSET A 1\nGOTO TOP\nSET B 2\n")
    assert result.params == {"A": "1"}
    assert kinds(result) == ["backward-goto"]


def test_s3_goto_may_land_in_another_section() -> None:
    script = (
        "GOTO H323\n# SIP\nSET SIG_SECTION sip\n# H323\nIF $SIG SEQ 2 GOTO APP\nSET X 1\n# APP\nSET APPNAME s.bin\n"
    )
    assert run(script).params == {"APPNAME": "s.bin"}


def test_d16_a_label_is_its_first_word() -> None:
    script = "GOTO SETTINGS3631\n# SETTINGS3631                    ##  \nSET A 1\n# SET TRUSTCERTS x.pem\nSET B 2\n"
    result = run(script)
    assert result.params == {"A": "1", "B": "2"}
    assert [(p.line, p.kind, p.detail) for p in result.problems] == [(4, "label-with-spaces", "TRUSTCERTS x.pem")]
    assert run("GOTO SET\nSET A 1\n# SET TRUSTCERTS x.pem\nSET B 2\n").params == {"B": "2"}


def test_d16_spacer_lines_are_not_labels() -> None:
    result = run("GOTO L\n#                 ##\n# \nSET A 1\n")
    assert result.params == {}
    assert kinds(result) == ["label-not-found"]


# §3 IF, D-13, D-14


def test_s3_if_on_an_undefined_variable_is_ignored() -> None:
    result = run("IF $PHONECC SEQ 700415540 GOTO L\nSET A 1\n# L\nSET B 2\n")
    assert result.params == {"A": "1", "B": "2"}
    assert [(p.kind, p.detail) for p in result.problems] == [("undefined-variable", "$PHONECC")]


def test_s3_if_with_a_literal_first_and_a_macro_second() -> None:
    result = run("IF J179 SEQ $MODEL4 GOTO L\nSET A 1\n# L\nSET B 2\n")
    assert result.params == {"B": "2"}


def test_s3_if_quoted_operands_may_hold_spaces() -> None:
    variables = Variables(PHONE, LANGUAGE_IN_USE="Latin American Spanish")
    result = run('IF $LANGUAGE_IN_USE SEQ "latin american spanish" GOTO L\nSET A 1\n# L\n', variables=variables)
    assert result.params == {}


def test_s3_an_empty_literal_tests_an_empty_value() -> None:
    result = run('SET HTTPDIR ""\nIF $HTTPDIR SEQ "" GOTO L\nSET A 1\n# L\n')
    assert result.params == {"HTTPDIR": ""}


def test_s3_seq_is_the_only_operator() -> None:
    result = run("IF $MODEL4 SNE J129 GOTO L\nSET A 1\n# L\n")
    assert result.params == {"A": "1"}
    assert [(p.kind, p.detail) for p in result.problems] == [("unknown-operator", "SNE")]


def test_d13_words_after_the_goto_tag_are_reported_but_the_jump_happens() -> None:
    result = run("IF $MODEL4 SEQ J179 GOTO L please\nSET A 1\n# L\n")
    assert result.params == {}
    assert [(p.kind, p.detail) for p in result.problems] == [("trailing-text", "please")]


def test_s4_if_reads_a_parameter_set_earlier_before_the_phone_variable() -> None:
    # C-08: the phone runs ha1603ua1_3200.bin, but the script has just SET APPNAME.
    variables = Variables(PHONE, APPNAME="ha1603ua1_3200.bin")
    script = "SET APPNAME hb1603ua1_2200.bin\nIF $APPNAME SEQ ha1603ua1_3200.bin GOTO DONE\nSET REACHED 1\n# DONE\n"
    assert run(script, variables=variables).params == {"APPNAME": "hb1603ua1_2200.bin", "REACHED": "1"}


@pytest.mark.parametrize(
    ("written", "matches"),
    [("c81fea9b6500", True), ("C81FEA9B6500", True), ("c8:1f:ea:9b:65:00", False)],
)
def test_d14_if_macaddr_is_twelve_hex_digits(written: str, matches: bool) -> None:
    result = run(f"IF $MACADDR SEQ {written} GOTO L\nSET MISSED 1\n# L\n")
    assert ("MISSED" not in result.params) is matches


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODEL", "J179D02A"),
        ("SERIALNO", "18WZ504009XT"),
        ("MACADDR_UPPER", "C81FEA9B6500"),
        ("APPNAME_IN_USE", "4.1.1.0.7"),
        ("HWVERS", "1"),
        ("GROUP", "0"),
    ],
)
def test_s4_phone_variables_can_be_tested(variable: str, value: str) -> None:
    result = run(f"IF ${variable} SEQ {value} GOTO L\nSET MISSED 1\n# L\n")
    assert result.params == {}
    assert result.problems == []


def test_s4_vantage_variables_come_from_the_extras() -> None:
    variables = Variables.for_phone("K175", MODEL6="K175CW", GEN="B", IPADD="10.0.0.5", SUBNET="255.255.255.0")
    script = "IF $MODEL6 SEQ K175CW GOTO A\n# A\nIF $GEN SEQ b GOTO B\nSET MISSED 1\n# B\n"
    assert run(script, variables=variables).params == {}


# §6 GROUP, D-12 read-only variables


def test_s6_group_cannot_be_set_from_a_file() -> None:
    variables = Variables.for_phone("J179", group=3)
    script = (
        "SET GROUP 1\nIF $GROUP SEQ 1 GOTO GROUP_1\nIF $GROUP SEQ 3 GOTO GROUP_3\n"
        "# GROUP_1\nSET G 1\n# GROUP_3\nSET G 3\n"
    )
    result = run(script, variables=variables)
    assert result.params == {"G": "3"}
    assert [(p.kind, p.detail) for p in result.problems] == [("read-only-parameter", "GROUP 1")]


def test_d12_the_phone_identity_is_read_only_but_sig_is_settable() -> None:
    script = "SET MODEL4 J129\nSET SIG 1\nIF $MODEL4 SEQ J179 GOTO A\n# A\nIF $SIG SEQ 1 GOTO B\nSET MISSED 1\n# B\n"
    result = run(script)
    assert result.params == {"SIG": "1"}
    assert kinds(result) == ["read-only-parameter"]


# §1, §3 GET


def test_s3_get_is_a_tail_call() -> None:
    result = run("SET A 1\nGET next.txt\nSET AFTER 1\n", {"next.txt": "SET B 2\n"})
    assert result.params == {"A": "1", "B": "2"}
    assert result.files == ["first.txt", "next.txt"]
    assert [(r.name, r.file, r.line) for r in result.trace] == [("first.txt", None, None), ("next.txt", "first.txt", 2)]


def test_s3_get_of_a_missing_file_goes_on_with_the_next_line() -> None:
    result = run("GET 46xxsettings.txt\nGET $MACADDR.txt\n", {"c81fea9b6500.txt": "SET SIP_USER_ID 4212"})
    assert fetched(result) == [("first.txt", True), ("46xxsettings.txt", False), ("c81fea9b6500.txt", True)]
    assert result.params == {"SIP_USER_ID": "4212"}
    assert [(p.kind, p.detail) for p in result.problems] == [("file-not-found", "46xxsettings.txt")]


def test_s1_a_missing_first_file_gives_an_empty_result() -> None:
    result = interpret("J100Supgrade.txt", EMPTY.get, PHONE)
    assert result.params == {}
    assert result.files == []
    assert [(r.path, r.found, r.file) for r in result.trace] == [("J100Supgrade.txt", False, None)]
    assert kinds(result) == ["first-file-not-found"]


def test_s1_httpdir_is_prepended_to_later_gets() -> None:
    result = run(
        "SET HTTPDIR J100\nGET 46xxsettings.txt\n", {"J100/46xxsettings.txt": "SET HTTPDIR /other/\nGET x.txt"}
    )
    assert fetched(result) == [("first.txt", True), ("J100/46xxsettings.txt", True), ("other/x.txt", False)]


def test_s1_the_phones_own_httpdir_applies_from_the_first_file() -> None:
    variables = Variables(PHONE, HTTPDIR="/$MACADDR/")
    result = interpret("J100Supgrade.txt", EMPTY.get, variables)
    assert result.trace[0].path == "C81FEA9B6500/J100Supgrade.txt"


def test_d17_tlsdir_can_be_the_directory_parameter() -> None:
    options = Options(directory_parameter="TLSDIR")
    result = run("SET HTTPDIR http\nSET TLSDIR $MODEL4dir\nGET x.txt\n", options=options)
    assert fetched(result)[-1] == ("J179dir/x.txt", False)


def test_d18_a_cycle_is_refused_and_the_file_goes_on() -> None:
    result = run("GET b.txt\n", {"b.txt": "GET first.txt\nSET B 1\n"})
    assert result.files == ["first.txt", "b.txt"]
    assert result.params == {"B": "1"}
    assert [(p.file, p.kind, p.detail) for p in result.problems] == [("b.txt", "already-fetched", "first.txt")]


def test_d18_a_missing_file_may_be_asked_for_again() -> None:
    result = run("GET $MACADDR.txt\nGET $MACADDR.txt\n")
    assert fetched(result) == [("first.txt", True), ("c81fea9b6500.txt", False), ("c81fea9b6500.txt", False)]


def test_d18_the_get_chain_stops_at_the_file_limit() -> None:
    files = {f"f{n}.txt": f"SET F{n} 1\nGET f{n + 1}.txt\nSET REFUSED{n} 1\n" for n in range(1, 20)}
    result = run("GET f1.txt\n", files)
    assert len(result.files) == 10
    assert result.files[-1] == "f9.txt"
    assert "REFUSED9" in result.params and "F10" not in result.params
    assert [(p.file, p.kind, p.detail) for p in result.problems] == [("f9.txt", "file-limit", "f10.txt")]


def test_d18_the_request_limit_bounds_missing_files() -> None:
    script = "".join(f"GET missing{n}.txt\n" for n in range(150))
    result = run(script, options=Options(max_fetches=20))
    assert len(result.trace) == 20
    assert kinds(result).count("fetch-limit") == 131


# §5 macros, D-19


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        (
            'SET MYCERTCN "Avaya telephone with MAC address $MACADDR"',
            "MYCERTCN",
            "Avaya telephone with MAC address c81fea9b6500",
        ),
        ("SET SCEPPASSWORD $SERIALNO", "SCEPPASSWORD", "18WZ504009XT"),
        ("SET NVVPNUSER $MACADDR_UPPER", "NVVPNUSER", "C81FEA9B6500"),
        ("SET HTTPDIR $MODEL4dir", "HTTPDIR", "J179dir"),
        ("SET TLSDIR /$MACADDR/$SERIALNO", "TLSDIR", "/C81FEA9B6500/18WZ504009XT"),
        ("SET FILE_SERVER_URL http://fs/$model4/", "FILE_SERVER_URL", "http://fs/J179/"),
        ("SET DISPLAY_NAME $MACADDR", "DISPLAY_NAME", "$MACADDR"),
        ("SET ADMIN_PASSWORD Pa$$word", "ADMIN_PASSWORD", "Pa$$word"),
    ],
)
def test_s5_macros_are_expanded_per_parameter(line: str, name: str, value: str) -> None:
    result = run(line)
    assert result.params == {name: value}
    assert result.problems == []


def test_d19_unknown_and_unavailable_macros_are_kept_and_reported() -> None:
    variables = Variables.for_phone("J179", mac=MAC)
    result = run("SET MYCERTCN $SERIALNO-$MODEL4\nGET $SERIALNO.txt\n", variables=variables)
    assert result.params == {"MYCERTCN": "$SERIALNO-$MODEL4"}
    assert fetched(result)[-1] == ("$SERIALNO.txt", False)
    assert [(p.kind, p.detail) for p in result.problems][:3] == [
        ("missing-macro-value", "$SERIALNO"),
        ("unexpanded-macro", "$MODEL4"),
        ("unexpanded-macro", "$SERIALNO"),
    ]


# The interface: fetch contract, sans-I/O core, async driver, Variables


def test_d22_replies_other_than_bytes() -> None:
    replies: dict[str, object] = {
        "first.txt": "GET a.txt\nGET b.txt\nGET c.txt\n",
        "a.txt": 42,
        "b.txt": bytearray(b""),
    }
    result = interpret("first.txt", replies.get, PHONE)  # type: ignore[arg-type]
    assert fetched(result) == [("first.txt", True), ("a.txt", False), ("b.txt", True)]
    assert kinds(result) == ["invalid-fetch-result"]


def test_exceptions_from_fetch_propagate() -> None:
    def broken(path: str) -> bytes | None:
        raise ConnectionError(path)

    with pytest.raises(ConnectionError):
        interpret("first.txt", broken, PHONE)


def test_the_core_is_sans_io() -> None:
    machine = steps("J100Supgrade.txt", PHONE)
    assert next(machine) == "J100Supgrade.txt"
    assert machine.send(b"SET HTTPDIR J100\nGET 46xxsettings.txt\n") == "J100/46xxsettings.txt"
    with pytest.raises(StopIteration) as done:
        machine.send(None)
    assert done.value.value.params == {"HTTPDIR": "J100"}


async def test_the_async_driver_gives_the_same_result() -> None:
    server = {"first.txt": b"SET A 1\nGET $MACADDR.txt\n", "c81fea9b6500.txt": b"SET B 2\n"}

    async def afetch(path: str) -> bytes | None:
        return server.get(path)

    assert await interpret_async("first.txt", afetch, PHONE) == interpret("first.txt", server.get, PHONE)


def test_variables_are_case_insensitive_and_for_phone_normalises_the_mac() -> None:
    variables = Variables.for_phone(
        "J139", mac="c8-1f-ea-9b-65-00", serial="18WZ504009XT", hwvers=None, PhoneCC=700513638
    )
    assert variables["macaddr"] == "C81FEA9B6500"
    assert variables["PHONECC"] == "700513638"
    assert variables["group"] == "0"
    assert "HWVERS" not in variables
    assert "MODEL" not in variables


def test_every_problem_carries_its_sentence() -> None:
    result = run("SET GROUP 1\nGOTO NOWHERE\n")
    assert [p.text for p in result.problems] == [PROBLEMS["read-only-parameter"], PROBLEMS["label-not-found"]]
