"""PRF-1, PRF-2, PRF-6, LOG-1: profile entries, provisioning URLs, redaction, wildcard certificates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from server.domain.errors import DomainError
from server.domain.profiles import (
    ParsedUrl,
    ProfileEntry,
    ServerType,
    is_ip_host,
    is_wildcard_certificate,
    parse_server_type,
    redact_text,
    redact_url,
    validate_entries,
    validate_profile_name,
    validate_provisioning_url,
    validate_root_ca,
    wildcard_certificate_warning,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def make_cert(
    *,
    ca: bool | None = True,
    cn: str = "Test Root CA",
    san: list[str] | None = None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return builder.sign(key, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


# The guide's "Provisioning URL formats" table, minus its typo (empty port) and typesetting spaces.
GUIDE_URLS = [
    "https://utilityserver.avaya.com",
    "https://utilityserver.avaya.com:443",
    "https://utilityserver.avaya.com/firmware",
    "https://utilityserver.avaya.com:443/firmware",
    "http://utilityserver.avaya.com",
    "http://utilityserver.avaya.com:8080",
    "http://utilityserver.avaya.com/firmware",
    "http://utilityserver.avaya.com:8080/firmware",
    "https://10.10.10.10",
    "https://10.10.10.10:443",
    "https://10.10.10.10/firmware",
    "https://10.10.10.10:443/firmware",
    "http://10.10.10.10",
    "http://10.10.10.10/firmware",
    "http://10.10.10.10:8080/firmware",
    "http://utilityserver.avaya.com/J100/$MODEL4",
    "http://utilityserver.avaya.com/J100/$MODEL4/$MACADDR",
    "http://utilityserver.avaya.com/J100/$MODEL4/$SERIALNO",
    "https://admin:t0pSecret@utilityserver.avaya.com",
    "https://admin:t0pSecret@utilityserver.avaya.com/Directory",
    "http://192.168.10.87",
    "http://provisioning.avaya.com",
    "https://des.avaya.com",
]


@pytest.mark.parametrize("url", GUIDE_URLS)
def test_prf2_guide_url_forms_accepted_unchanged(url: str) -> None:
    assert validate_provisioning_url(url).url == url


def test_prf2_parts_and_placeholders_parsed() -> None:
    parsed = validate_provisioning_url("https://admin:t0pSecret@prov.example.com:8443/J100/$MODEL4/$MACADDR/")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path) == (
        "https",
        "prov.example.com",
        8443,
        "/J100/$MODEL4/$MACADDR/",
    )
    assert (parsed.username, parsed.password) == ("admin", "t0pSecret")
    assert parsed.placeholders == ("$MODEL4", "$MACADDR")
    assert not parsed.is_ip


def test_prf2_scheme_and_host_case_folded_path_kept() -> None:
    assert validate_provisioning_url("HTTPS://Prov.Example.COM/J100/Settings").url == (
        "https://prov.example.com/J100/Settings"
    )


@pytest.mark.parametrize("port", ["1", "65535", "443"])
def test_prf2_port_bounds_accepted(port: str) -> None:
    assert validate_provisioning_url(f"http://h.example.com:{port}/").port == int(port)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://h.example.com/", "scheme 'ftp'"),
        ("h.example.com/path", "must start with http:// or https://"),
        ("//h.example.com", "must start with http:// or https://"),
        ("http://10.10.10.10:", "port after ':' is empty"),
        ("http://h.example.com:0/", "outside 1-65535"),
        ("http://h.example.com:65536/", "outside 1-65535"),
        ("http://h.example.com:80a/", "not a number"),
        ("http://h.example.com:0080/", "leading zero"),
        ("http://[2001:db8::1]/", "IPv6"),
        ("http://2001:db8::1/", "IPv6"),
        ("http://provisioning/", "not a fully qualified domain name"),
        ("http://localhost:8080/", "not a fully qualified domain name"),
        ("http://h.example.com./", "ends with a dot"),
        ("http://h..example.com/", "empty label"),
        ("http://-h.example.com/", "not a valid host name label"),
        ("http://h_x.example.com/", "not a valid host name label"),
        ("http://10.10.10/", "not a valid IPv4 address"),
        ("http://10.10.10.256/", "not a valid IPv4 address"),
        ("http://010.10.10.10/", "not a valid IPv4 address"),
        ("http://1.2.3.4.5/", "not a valid IPv4 address"),
        ("http://example.123/", "neither a valid IPv4 address nor a domain name"),
        ("http:///path", "host name is missing"),
        ("http://utilityserver.avaya.com/ J100/$MODEL4", "space at position 32"),
        ("http://h.example.com/a\tb", "control character (U+0009)"),
        ("http://h.example.com/\x7f", "control character (U+007F)"),
        ("http://h.example.com/é", "non-ASCII"),
        ("http://bücher.example.com/", "non-ASCII"),
        ("http://h.example.com/#top", "fragments"),
        ("http://h.example.com/?x=1", "query strings"),
        ("http://h.example.com/$MODEL", "unknown placeholder '$MODEL'"),
        ("http://h.example.com/$MACADDRESS", "unknown placeholder '$MACADDRESS'"),
        ("http://h.example.com/$model4", "unknown placeholder '$model4'"),
        ("http://h.example.com/cost$", "lone '$'"),
        ("http://$MODEL4.example.com/", "path only"),
        ("http://h.example.com/a%2", "invalid percent-escape"),
        ("http://h.example.com/a%zz", "invalid percent-escape"),
        ("http://h.example.com/a\\b", "not allowed in the path"),
        ('http://h.example.com/a"b', "not allowed in the path"),
        ("http://admin@h.example.com/", "without a password"),
        ("http://:pw@h.example.com/", "user name before ':' is empty"),
        ("http://admin:@h.example.com/", "password after ':' is empty"),
        ("http://a:b@c@h.example.com/", "more than one '@'"),
        ("http://admin:p/w@h.example.com/", "must be percent-encoded"),
        ("http://admin:p#w@h.example.com/", "percent-encode it in the password"),
        ("http://h.example.com/users/@me", "must be percent-encoded"),
        ("", "empty"),
        ("http://h.example.com/" + "a" * 235, "phones accept at most 255"),
    ],
)
def test_prf2_refusal_says_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(DomainError) as caught:
        validate_provisioning_url(url)
    assert caught.value.error == "invalid-url"
    assert caught.value.status == 422
    assert why in caught.value.detail


@pytest.mark.parametrize("value", [None, 42, b"http://h.example.com/"])
def test_prf2_non_string_refused(value: object) -> None:
    with pytest.raises(DomainError) as caught:
        validate_provisioning_url(value)
    assert caught.value.error == "invalid-url"


def test_prf2_length_limit_is_255() -> None:
    base = "http://h.example.com/"
    assert validate_provisioning_url(base + "a" * (255 - len(base))).url.endswith("a")


def test_prf2_percent_encoded_password_accepted() -> None:
    parsed = validate_provisioning_url("https://admin:p%40ss%2Fw0rd@h.example.com/x")
    assert parsed.password == "p%40ss%2Fw0rd"


def test_log1_refused_url_error_value_is_redacted() -> None:
    with pytest.raises(DomainError) as caught:
        validate_provisioning_url("https://admin:t0pSecret@h.example.com/ bad")
    assert "t0pSecret" not in str(caught.value.value)
    assert "t0pSecret" not in caught.value.detail
    assert caught.value.value == "https://admin:****@h.example.com/ bad"


def test_log1_parsed_url_prints_redacted() -> None:
    parsed = validate_provisioning_url("https://admin:t0pSecret@h.example.com/x")
    assert str(parsed) == "https://admin:****@h.example.com/x"
    assert "t0pSecret" not in repr(parsed)
    assert parsed.redacted == "https://admin:****@h.example.com/x"
    assert parsed.url == "https://admin:t0pSecret@h.example.com/x"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "https://admin:t0pSecret@utilityserver.avaya.com",
            "https://admin:****@utilityserver.avaya.com",
        ),
        ("https://a:p%40ss@h.example.com:8443/x", "https://a:****@h.example.com:8443/x"),
        ("https://a:p/ss@w0rd@h.example.com/x", "https://a:****@h.example.com/x"),
        ("https://h.example.com:8443/x", "https://h.example.com:8443/x"),
        ("https://user@h.example.com/x", "https://user@h.example.com/x"),
        ("not a url", "not a url"),
    ],
)
def test_log1_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_log1_redact_text_redacts_every_url_password() -> None:
    text = (
        'profile changed from https://a:first@h1.example.com/x to "http://b:second@10.0.0.1:8080/y", '
        "see http://plain.example.com/z"
    )
    out = redact_text(text)
    assert "first" not in out
    assert "second" not in out
    assert out == (
        'profile changed from https://a:****@h1.example.com/x to "http://b:****@10.0.0.1:8080/y", '
        "see http://plain.example.com/z"
    )


# Any printable password without white space, quotes or angle brackets (which end a URL in text).
@given(password=st.text(st.characters(exclude_categories=("Z", "C"), exclude_characters="\"'<>"), min_size=1))
def test_log1_redaction_never_leaks_a_password(password: str) -> None:
    out = redact_text(f"url=https://admin:{password}@h.example.com/p done")
    assert out == "url=https://admin:****@h.example.com/p done"


def test_prf2_is_ip_host() -> None:
    assert is_ip_host("http://10.10.10.10:8080/firmware")
    assert not is_ip_host("http://utilityserver.avaya.com/firmware")
    assert is_ip_host(validate_provisioning_url("https://192.168.10.87"))


@pytest.mark.parametrize(
    ("raw", "url", "expected"),
    [
        ("HTTP(S)", "https://h.example.com", ServerType.HTTPS),
        ("http(s)", "http://h.example.com", ServerType.HTTP),
        ("HTTPS", "https://h.example.com", ServerType.HTTPS),
        ("HTTP", "http://h.example.com", ServerType.HTTP),
        ("DES", "https://des.example.com", ServerType.DES),
        ("des", "https://des.example.com", ServerType.DES),
    ],
)
def test_prf1_server_type_follows_scheme(raw: str, url: str, expected: ServerType) -> None:
    assert parse_server_type(raw, validate_provisioning_url(url)) is expected


@pytest.mark.parametrize(
    ("raw", "url", "error"),
    [
        ("HTTPS", "http://h.example.com", "server-type-mismatch"),
        ("HTTP", "https://h.example.com", "server-type-mismatch"),
        ("DES", "http://des.example.com", "server-type-mismatch"),
        ("FTP", "http://h.example.com", "invalid-server-type"),
        (None, "http://h.example.com", "invalid-server-type"),
    ],
)
def test_prf1_server_type_refusals(raw: object, url: str, error: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_server_type(raw, validate_provisioning_url(url))
    assert caught.value.error == error


def test_prf1_entry_defaults() -> None:
    [entry] = validate_entries([{"server_type": "HTTP(S)", "url": "https://h.example.com/J100"}])
    assert entry == ProfileEntry(ServerType.HTTPS, "https://h.example.com/J100", False, None, 0)
    assert entry.to_dict() == {
        "server_type": "HTTPS",
        "url": "https://h.example.com/J100",
        "identity_certificates": False,
        "root_ca_pem": None,
        "group": 0,
    }


def test_prf1_several_entries_with_all_fields() -> None:
    ca = make_cert()
    entries = validate_entries(
        [
            {"server_type": "DES", "url": "https://des.example.com", "group": 17},
            {
                "server_type": "HTTP",
                "url": "http://10.0.0.5/$MODEL4",
                "identity_certificates": True,
                "root_ca_pem": pem(ca),
                "group": 999,
            },
        ],
        now=NOW,
    )
    assert [e.server_type for e in entries] == [ServerType.DES, ServerType.HTTP]
    assert entries[1].identity_certificates is True
    assert entries[1].group == 999
    assert entries[1].root_ca_pem == pem(ca)


@pytest.mark.parametrize("raw", [[], None, "https://h.example.com", {}])
def test_prf1_profile_needs_at_least_one_entry(raw: object) -> None:
    with pytest.raises(DomainError) as caught:
        validate_entries(raw)
    assert caught.value.error == "profile-without-entries"


def test_prf1_at_most_twenty_entries() -> None:
    entry = {"server_type": "HTTPS", "url": "https://h.example.com"}
    assert len(validate_entries([entry] * 20)) == 20
    with pytest.raises(DomainError) as caught:
        validate_entries([entry] * 21)
    assert caught.value.error == "too-many-entries"


@pytest.mark.parametrize("group", [0, 999])
def test_prf1_group_bounds_accepted(group: int) -> None:
    [entry] = validate_entries([{"server_type": "HTTPS", "url": "https://h.example.com", "group": group}])
    assert entry.group == group


@pytest.mark.parametrize("group", [-1, 1000, True, "5", 5.0, None])
def test_prf1_group_outside_0_999_refused(group: object) -> None:
    with pytest.raises(DomainError) as caught:
        validate_entries([{"server_type": "HTTPS", "url": "https://h.example.com", "group": group}])
    assert caught.value.error == "invalid-group"
    assert caught.value.value == group


def test_prf1_error_names_the_failing_entry() -> None:
    good = {"server_type": "HTTPS", "url": "https://h.example.com"}
    bad = {"server_type": "HTTPS", "url": "https://h.example.com:99999"}
    with pytest.raises(DomainError) as caught:
        validate_entries([good, bad])
    assert caught.value.error == "invalid-url"
    assert caught.value.detail.startswith("Entry 1: ")
    assert caught.value.to_json()["entry"] == 1


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"server_type": "HTTPS"}, "missing-field"),
        ({"url": "https://h.example.com"}, "missing-field"),
        ({"server_type": "HTTPS", "url": "https://h.example.com", "colour": "red"}, "unknown-field"),
        (
            {"server_type": "HTTPS", "url": "https://h.example.com", "identity_certificates": "yes"},
            "invalid-identity-certificates",
        ),
        ("https://h.example.com", "invalid-entry"),
    ],
)
def test_prf1_malformed_entry_refused(entry: object, error: str) -> None:
    with pytest.raises(DomainError) as caught:
        validate_entries([entry])
    assert caught.value.error == error


def test_prf1_root_ca_accepted_and_normalised() -> None:
    ca = make_cert()
    messy = "\n\n" + pem(ca).replace("\n", "\r\n") + "\n"
    assert validate_root_ca(messy, now=NOW) == pem(ca)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: pem(make_cert(ca=False, cn="leaf.example.com")), "not a CA certificate"),
        (lambda: pem(make_cert(ca=None, cn="v1-style")), "not a CA certificate"),
        (lambda: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "not a readable"),
        (lambda: "hello", "holds 0"),
        (lambda: pem(make_cert()) + pem(make_cert()), "holds 2"),
        (
            lambda: pem(make_cert(not_after=NOW - timedelta(days=1), not_before=NOW - timedelta(days=9))),
            "not valid now",
        ),
        (lambda: pem(make_cert(not_before=NOW + timedelta(days=1))), "not valid now"),
    ],
)
def test_prf1_bad_root_ca_refused(make: object, why: str) -> None:
    assert callable(make)
    with pytest.raises(DomainError) as caught:
        validate_root_ca(make(), now=NOW)
    assert caught.value.error == "invalid-root-ca"
    assert why in caught.value.detail


def test_prf1_root_ca_error_carries_entry_index() -> None:
    leaf = pem(make_cert(ca=False))
    with pytest.raises(DomainError) as caught:
        validate_entries([{"server_type": "HTTPS", "url": "https://h.example.com", "root_ca_pem": leaf}])
    assert caught.value.error == "invalid-root-ca"
    assert caught.value.extra["entry"] == 0


def test_prf6_wildcard_certificate_detected() -> None:
    assert is_wildcard_certificate(make_cert(ca=False, cn="prov", san=["*.example.com"]))
    assert is_wildcard_certificate(make_cert(ca=False, cn="*.example.com"))
    assert not is_wildcard_certificate(make_cert(ca=False, cn="prov.example.com", san=["prov.example.com"]))


def test_prf6_wildcard_warning_only_for_https() -> None:
    wildcard = make_cert(ca=False, cn="prov", san=["*.example.com"])
    explicit = make_cert(ca=False, cn="prov.example.com", san=["prov.example.com"])
    https = validate_provisioning_url("https://prov.example.com/")
    http = validate_provisioning_url("http://prov.example.com/")
    assert wildcard_certificate_warning(https, wildcard) == "wildcard-certificate"
    assert wildcard_certificate_warning(https, explicit) is None
    assert wildcard_certificate_warning(http, wildcard) is None


def test_prf1_profile_name() -> None:
    assert validate_profile_name("  Main office ") == "Main office"
    for bad in ["", "  ", "x" * 129, "a\nb", None]:
        with pytest.raises(DomainError) as caught:
            validate_profile_name(bad)
        assert caught.value.error == "invalid-profile-name"


def test_prf2_parsed_url_is_value_object() -> None:
    assert validate_provisioning_url("http://h.example.com/x") == ParsedUrl("http", "h.example.com", None, "/x")
