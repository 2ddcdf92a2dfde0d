"""The oracles on hand-made observations (no network): each fires on the flaw it names
and stays silent on what a correct server does."""

from __future__ import annotations

from smtpproto.fuzz.observation import ConnResult, Liveness, Observation, Step, parse
from smtpproto.fuzz.oracles import ORACLES, judge, prefix_succeeded, reply_index
from smtpproto.fuzz.transcript import Event, close_notify, send, starttls

BANNER = b"220 mx ESMTP\r\n"


def _obs(
    *steps: Step, end: str = "closed", ended_after: int = -1, live: bool | None = None
) -> Observation:
    conn = ConnResult([Step(None, BANNER), *steps], end=end, ended_after=ended_after)
    liveness = None if live is None else Liveness(live, BANNER if live else b"", "refused")
    return Observation([conn], liveness)


def _step(
    event: Event, received: bytes = b"", *, elapsed: float = 0.01, late: bool = False
) -> Step:
    return Step(event, received, elapsed, late)


EHLO = _step(send(b"EHLO x\r\n", 1), b"250 mx\r\n")
MAIL = _step(send(b"MAIL FROM:<a@b>\r\n", 1), b"250 ok\r\n")
RCPT = _step(send(b"RCPT TO:<c@d>\r\n", 1), b"250 ok\r\n")
DATA = _step(send(b"DATA\r\n", 1), b"354 go\r\n")
QUIT = _step(send(b"QUIT\r\n", 1), b"221 bye\r\n")


def test_every_oracle_is_registered() -> None:
    assert set(ORACLES) == {
        "smuggling", "unsolicited", "accepted", "crash", "hang", "invalid", "count",
        "advertises", "slow",
    }  # fmt: skip


# -- smuggling -----------------------------------------------------------------------


def _content(received: bytes) -> Step:
    return _step(send(b"x\n.\nMAIL FROM:<a@b>\r\n...\r\n.\r\n", 1, trigger=True), received)


def test_smuggling_fires_when_the_fake_end_ends_the_message_and_commands_run() -> None:
    got = b"250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued 2\r\n"
    verdict = judge("smuggling", _obs(EHLO, MAIL, RCPT, DATA, _content(got), QUIT))
    assert verdict is not None
    assert "11 replies where a correct server sends 7" in verdict


def test_smuggling_is_silent_on_one_reply_for_the_whole_message() -> None:
    assert judge("smuggling", _obs(EHLO, MAIL, RCPT, DATA, _content(b"250 ok\r\n"), QUIT)) is None


def test_smuggling_is_silent_when_the_server_refuses_the_bare_lf() -> None:
    # A refusal first (then anything) is a strict server, not an accepted message.
    got = b"550 bare LF\r\n500 what\r\n"
    assert judge("smuggling", _obs(EHLO, MAIL, RCPT, DATA, _content(got), QUIT)) is None


# -- unsolicited -----------------------------------------------------------------------


def test_unsolicited_fires_on_bytes_right_after_the_handshake() -> None:
    steps = [
        EHLO,
        _step(send(b"STARTTLS\r\nNOOP\r\n", 1), b"220 go\r\n"),
        _step(starttls(trigger=True), b"250 ok\r\n"),
    ]
    verdict = judge("unsolicited", _obs(*steps))
    assert verdict is not None and "250 ok" in verdict


def test_unsolicited_is_silent_when_the_server_waits() -> None:
    steps = [
        EHLO,
        _step(send(b"STARTTLS\r\nNOOP\r\n", 1), b"220 go\r\n"),
        _step(starttls(trigger=True)),
    ]
    assert judge("unsolicited", _obs(*steps)) is None


# -- accepted --------------------------------------------------------------------------


def test_accepted_fires_on_a_2xx_where_a_refusal_is_due() -> None:
    rcpt = _step(send(b"RCPT TO:<c@d>\r\n", 1, trigger=True), b"250 ok\r\n")
    assert judge("accepted", _obs(EHLO, rcpt, QUIT), {"codes": [2, 3]}) is not None


def test_accepted_is_silent_on_503() -> None:
    rcpt = _step(send(b"RCPT TO:<c@d>\r\n", 1, trigger=True), b"503 5.5.1 need MAIL\r\n")
    assert judge("accepted", _obs(EHLO, rcpt, QUIT), {"codes": [2, 3]}) is None


def test_accepted_needs_the_state_to_be_reached() -> None:
    refused_mail = _step(send(b"MAIL FROM:<a@b>\r\n", 1), b"530 auth first\r\n")
    auth = _step(send(b"AUTH PLAIN\r\n", 1, trigger=True), b"334 \r\n")
    assert judge("accepted", _obs(EHLO, refused_mail, auth)) is None
    allowed = _step(send(b"AUTH PLAIN eA==\r\n", 1, may_fail=True), b"535 no\r\n")
    mail = _step(send(b"MAIL FROM:<a@b>\r\n", 1, trigger=True), b"250 ok\r\n")
    assert judge("accepted", _obs(EHLO, allowed, mail), {"codes": [2]}) is not None


def test_accepted_codes_narrow_the_verdict() -> None:
    auth = _step(send(b"AUTH LOGIN\r\n", 1, trigger=True), b"334 VXNlcm5hbWU6\r\n")
    assert judge("accepted", _obs(EHLO, auth), {"codes": [2]}) is None
    assert judge("accepted", _obs(EHLO, auth), {"codes": [2, 3]}) is not None


def test_accepted_reads_the_reply_by_count_across_reads() -> None:
    # The reply to the trigger arrived in the same read as the previous one.
    mail = _step(send(b"MAIL FROM:<a@b>\r\n", 1), b"250 ok\r\n250 ok\r\n")
    rcpt = _step(send(b"RCPT TO:<x>\r\n", 1, trigger=True), b"")
    obs = _obs(EHLO, mail, rcpt)
    conn = obs.conns[0]
    assert reply_index(conn, 3) == 3
    assert judge("accepted", obs) is None  # the reply came before the trigger was sent


def test_prefix_succeeded_counts_banner_and_replies() -> None:
    obs = _obs(EHLO, MAIL, RCPT)
    conn = obs.conns[0]
    replies, _ = parse(conn)
    assert prefix_succeeded(conn, replies, 3)


# -- crash -----------------------------------------------------------------------------


def test_crash_needs_a_dead_server() -> None:
    line = _step(send(b"NOOP " + b"a" * 5000 + b"\r\n", 1, trigger=True))
    verdict = judge("crash", _obs(EHLO, line, end="eof", ended_after=2, live=False))
    assert verdict is not None and "server crash" in verdict
    assert judge("crash", _obs(EHLO, line, end="eof", ended_after=2, live=True)) is None


def test_crash_is_silent_on_421_or_a_reply() -> None:
    line = _step(send(b"XFUZZ\r\n", 1, trigger=True), b"421 too many errors\r\n")
    assert judge("crash", _obs(EHLO, line, end="eof", ended_after=2, live=False)) is None
    answered = _step(send(b"QUIT\r\n", 1, trigger=True), b"221 bye\r\n")
    assert judge("crash", _obs(EHLO, answered, end="eof", ended_after=2, live=False)) is None


def test_crash_sees_a_changed_banner() -> None:
    line = _step(send(b"NOOP\r\n", 1, trigger=True))
    obs = _obs(EHLO, line, end="reset", ended_after=2)
    obs.liveness = Liveness(True, b"554 go away\r\n")
    verdict = judge("crash", obs)
    assert verdict is not None and "banner changed" in verdict


def test_crash_is_silent_when_the_fresh_connection_is_told_the_server_is_busy() -> None:
    """A correct server that hung up after its 5yz (Exim: "500 Too many unrecognized
    commands", then close) and greets the next connection with 421 because it is
    rate-limiting or loaded (RFC 5321 §3.8, §4.2.3) is alive: no crash."""
    line = _step(send(b"XFUZZ\r\n", 1, trigger=True), b"500 Too many unrecognized commands\r\n")
    for greeting in (b"421 4.7.0 too many connections\r\n", b"421-busy\r\n421 try later\r\n"):
        obs = _obs(EHLO, line, end="eof", ended_after=2)
        obs.liveness = Liveness(True, greeting)
        assert judge("crash", obs) is None, greeting


# -- hang ------------------------------------------------------------------------------


def test_hang_fires_when_nothing_comes_back() -> None:
    help_ = _step(send(b"HELP\r\n", 1, trigger=True), elapsed=2.0, late=True)
    quit_ = _step(send(b"QUIT\r\n", 1), elapsed=2.0, late=True)
    assert judge("hang", _obs(EHLO, help_, quit_), {"bound": 1.5}) is not None
    assert judge("hang", _obs(EHLO, help_, quit_), {"bound": 10}) is None


def test_hang_is_silent_once_any_byte_came() -> None:
    help_ = _step(send(b"HELP\r\n", 1, trigger=True), b"214 ok\r\n", elapsed=2.0)
    assert judge("hang", _obs(EHLO, help_), {"bound": 1.0}) is None


# -- invalid ---------------------------------------------------------------------------


def test_invalid_fires_on_grammar_errors() -> None:
    bare_lf = _step(send(b"VRFY x\r\n", 1, trigger=True), b"252 maybe\n")
    assert "grammar" in (judge("invalid", _obs(EHLO, bare_lf)) or "")
    mixed = _step(send(b"HELP\r\n", 1, trigger=True), b"214-a\r\n211 b\r\n")
    assert judge("invalid", _obs(EHLO, mixed)) is not None


def test_invalid_fires_on_a_reply_left_half_way() -> None:
    ehlo = _step(send(b"EHLO x\r\n", 1, trigger=True), b"250-mx\r\n250-PIPELINING\r\n", late=True)
    verdict = judge("invalid", _obs(ehlo))
    assert verdict is not None and "middle of a reply" in verdict


def test_invalid_is_silent_on_good_replies() -> None:
    assert judge("invalid", _obs(EHLO, MAIL, RCPT, QUIT)) is None


# -- count, advertises, slow --------------------------------------------------------------


def test_count_fires_on_surplus_and_on_a_dropped_reply() -> None:
    rset = _step(send(b"RSET\r\n", 1, trigger=True), b"250 ok\r\n250 ok\r\n")
    assert judge("count", _obs(EHLO, MAIL, rset, QUIT)) is not None
    batch = _step(send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\n", 3, trigger=True))
    dropped = Step(batch.event, b"250 ok\r\n250 ok\r\n")
    assert judge("count", _obs(EHLO, dropped, QUIT)) is not None
    whole = Step(batch.event, b"250 ok\r\n250 ok\r\n250 ok\r\n")
    assert judge("count", _obs(EHLO, whole, QUIT)) is None


def test_advertises_fires_on_starttls_inside_tls() -> None:
    ehlo = _step(send(b"EHLO x\r\n", 1, trigger=True), b"250-mx\r\n250 STARTTLS\r\n")
    assert judge("advertises", _obs(ehlo), {"keyword": "STARTTLS"}) is not None
    plain = _step(send(b"EHLO x\r\n", 1, trigger=True), b"250-mx\r\n250 AUTH PLAIN\r\n")
    assert judge("advertises", _obs(plain), {"keyword": "STARTTLS"}) is None


def test_slow_compares_the_trigger_time_with_the_bound() -> None:
    line = _step(send(b"NOOP aaaa\r\n", 1, trigger=True), b"500 too long\r\n", elapsed=1.2)
    assert judge("slow", _obs(EHLO, line), {"seconds": 0.6}) is not None
    assert judge("slow", _obs(EHLO, line), {"seconds": 2.0}) is None


def test_no_trigger_means_no_verdict() -> None:
    obs = _obs(EHLO, _step(close_notify()), MAIL)
    for name in ("smuggling", "unsolicited", "accepted", "hang", "count", "advertises", "slow"):
        assert judge(name, obs, {"bound": 0.0, "seconds": 0.0}) is None


def test_invalid_fires_on_codes_the_rfc_does_not_allow() -> None:
    quit_ = _step(send(b"QUIT\r\n", 1), b"250 bye\r\n")
    verdict = judge("invalid", _obs(EHLO, quit_))
    assert verdict is not None and "221" in verdict
    obs = _obs(EHLO)
    obs.conns[0].steps[0] = Step(None, b"250 hello\r\n")
    assert "greeting" in (judge("invalid", obs) or "")
    refused = _step(send(b"NOOP\r\n", 1), b"500 no\r\n")
    assert judge("invalid", _obs(EHLO, refused)) is None
