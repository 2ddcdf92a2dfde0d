"""The probes as data (no network): every probe is a well-formed dialogue with exactly
one trigger, and the families follow the profile."""

from __future__ import annotations

from typing import Any

import pytest

from smtpproto.fuzz.fingerprint import Profile, Settings
from smtpproto.fuzz.oracles import ORACLES, is_trigger
from smtpproto.fuzz.probes import FAMILIES, SMUGGLING_ENDINGS, _domain, build_probes
from smtpproto.fuzz.transcript import connect


def _profile(**changes: object) -> Profile:
    profile = Profile(Settings(tls="starttls"))
    profile.keywords_before_tls = {"STARTTLS": "", "PIPELINING": ""}
    profile.keywords = {
        "PIPELINING": "", "CHUNKING": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN",
    }  # fmt: skip
    profile.tls_active = True
    profile.mail_from, profile.rcpt_to = "a@example.com", "b@example.com"
    profile.can_reach_data = True
    profile.mail_without_hello_refused = True
    for name, value in changes.items():
        setattr(profile, name, value)
    return profile


def test_every_probe_is_a_dialogue_with_one_trigger() -> None:
    probes = build_probes(_profile())
    assert len({p.name for p in probes}) == len(probes)
    for probe in probes:
        assert probe.events[0] == connect(), probe.name
        triggers = [e for e in probe.events if is_trigger(e)]
        assert len(triggers) == 1 or probe.name == "rcpt-cost", probe.name
        assert probe.oracle in ORACLES
        assert probe.family in FAMILIES
        for event in probe.events:
            if event.dir == "c2s":
                assert event.expect is not None, probe.name


def test_families_come_in_campaign_order_with_crashes_last() -> None:
    families = [p.family for p in build_probes(_profile())]
    order = [f for i, f in enumerate(families) if i == 0 or families[i - 1] != f]
    assert order == [f for f in FAMILIES if f in order]
    assert order[-1] == "crash"


def test_smuggling_hides_a_whole_transaction_behind_each_ending() -> None:
    probes = build_probes(_profile(), ("smuggling",))
    assert len(probes) == len(SMUGGLING_ENDINGS)
    for probe, ending in zip(probes, SMUGGLING_ENDINGS.values(), strict=True):
        content = next(e for e in probe.events if is_trigger(e)).data
        assert (
            ending + b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" in content
        )
        assert content.endswith(b"\r\n.\r\n")
        assert content.count(b"\r\n.\r\n") == 1 or ending.endswith(b"\r\n.\r\n")


def test_no_data_no_smuggling() -> None:
    assert build_probes(_profile(can_reach_data=False), ("smuggling",)) == []


def test_starttls_injection_sends_the_command_and_plaintext_in_one_write() -> None:
    probes = {p.name: p for p in build_probes(_profile(), ("starttls",))}
    injection = probes["starttls-injection"]
    writes = [e.data for e in injection.events if e.dir == "c2s"]
    assert b"STARTTLS\r\nNOOP\r\n" in writes
    assert injection.oracle == "unsolicited"
    assert not build_probes(_profile(keywords_before_tls={}), ("starttls",))


def test_implicit_tls_skips_starttls_probes() -> None:
    profile = _profile(settings=Settings(tls="implicit"))
    assert build_probes(profile, ("starttls",)) == []


def test_size_probe_follows_the_advertised_limit() -> None:
    probes = {p.name: p for p in build_probes(_profile(), ("syntax",))}
    write = next(e for e in probes["size-limit-ignored"].events if is_trigger(e))
    assert write.data.endswith(b" SIZE=1001\r\n")
    no_size = _profile(keywords={"PIPELINING": ""})
    assert "size-limit-ignored" not in {p.name for p in build_probes(no_size, ("syntax",))}


@pytest.mark.parametrize("length", [5, 64, 70, 100, 255, 300, 1000])
def test_domain_has_the_asked_length_and_short_labels(length: int) -> None:
    domain = _domain(length)
    assert len(domain) == length
    assert all(0 < len(label) <= 63 for label in domain.split("."))


@pytest.mark.parametrize(
    "options",
    [
        {"ehlo": "x\r\nVRFY root"},
        {"mail_from": "a@b.test\r\nRSET"},
        {"rcpt_to": "b@c.test>\nRSET"},
        {"rcpt_to": "\xe9@c.test"},
        {"auth": ("al\x00ice", "FuzzS3cretPW")},
        {"auth": ("alice", "FuzzS3cretPW\udcff")},
    ],
)
def test_settings_refuse_what_the_baseline_cannot_send(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        Settings(**options)
    assert "FuzzS3cretPW" not in str(info.value) and info.value.__context__ is None


def test_settings_never_show_the_password() -> None:
    settings = Settings(auth=("alice", "FuzzS3cretPW"))
    assert "FuzzS3cretPW" not in repr(settings) + repr(Profile(settings))
