"""State exploration (breadth-first) and generative fuzzing (mutation of dialogues).

Exploration
-----------
The server is a black box, so its state is what we observe: the phase a correct server
would be in after the replies we got (``connected``, ``greeted``, ``mail``, ``rcpt``;
``unknown`` once a reply leaves it open), whether TLS is active, and the last reply's
code and enhanced-code class. ``explore`` walks (observed state x command class)
breadth-first: each path is replayed on a fresh connection with one more command, the
new state is recorded as an edge of the learned graph (written as Graphviz ``.dot``),
and states not seen before are expanded, up to ``MAX_DEPTH`` commands. While walking,
the RFC sequence rules are the oracle (RFC 5321 §3.3, §4.1.1.5, §4.1.4: RCPT needs an
open transaction, DATA needs a recipient, MAIL may not nest, RSET and EHLO clear the
transaction): a 2xx/3xx where they demand a refusal is a candidate.

Generative fuzzing
------------------
``generate`` mutates recorded dialogues (the explored paths), favouring rarely visited
states: it picks a path, replaces one command by a mutation of it (byte insertions from
the SMTP delimiters, repetition, truncation, case flips, CR/LF/NUL injection, very long
arguments) and follows it with a ``NOOP`` control. The oracles are the generic ones: a
dead server, a hang that the control does not share, a reply that breaks the grammar.
The random generator is seeded (``--seed``), so a campaign can be repeated; no
Hypothesis is needed at run time.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .fingerprint import Profile
from .observation import parse
from .oracles import judge
from .probes import Probe
from .runner import Runner
from .transcript import Event, Transcript, send
from .triage import Candidate, judge_run

if TYPE_CHECKING:
    from .report import Phase


__all__ = ["MAX_DEPTH", "explore", "generate"]

#: Longest command path the breadth-first walk expands.
MAX_DEPTH = 3
#: Most runs the walk spends.
MAX_EXPLORE_RUNS = 120

_SEQUENCE = "RFC 5321 §3.3, §4.1.1.5, §4.1.4 (503 bad sequence of commands)"


@dataclass(frozen=True)
class _Command:
    name: str
    data: bytes


def _commands(profile: Profile) -> list[_Command]:
    mf, rt = profile.mail_from, profile.rcpt_to
    commands = [
        _Command("EHLO", profile.hello()),
        _Command("HELO", b"HELO " + profile.settings.ehlo.encode() + b"\r\n"),
        _Command("MAIL", f"MAIL FROM:<{mf}>\r\n".encode()),
        _Command("RCPT", f"RCPT TO:<{rt}>\r\n".encode()),
        _Command("DATA", b"DATA\r\n"),
        _Command("RSET", b"RSET\r\n"),
        _Command("NOOP", b"NOOP\r\n"),
        _Command("VRFY", b"VRFY postmaster\r\n"),
        _Command("JUNK", b"XFUZZ junk\r\n"),
    ]
    if profile.chunking:
        commands.append(_Command("BDAT", b"BDAT 5 LAST\r\nhello"))
    return commands


def _next_phase(phase: str, command: str, code: int) -> str:
    """The phase a correct server is in after ``command`` got ``code``."""
    ok = code // 100 in (2, 3)
    if phase == "unknown":
        return phase
    if command in ("EHLO", "RSET") and ok:
        return "greeted" if phase != "connected" or command == "EHLO" else phase
    if command == "HELO":
        return "unknown" if ok else phase
    if command == "MAIL" and ok:
        return "mail"
    if command == "RCPT" and ok:
        return "rcpt"
    if command in ("DATA", "BDAT") and ok:
        return "unknown"
    return phase


def _violation(phase: str, command: str, code: int) -> str | None:
    """The rule a 2xx/3xx to ``command`` breaks in ``phase``, if any."""
    if code // 100 not in (2, 3) or phase == "unknown":
        return None
    if command == "RCPT" and phase in ("connected", "greeted"):
        return "RCPT accepted without an open mail transaction"
    if command in ("DATA", "BDAT") and phase in ("connected", "greeted", "mail"):
        return f"{command} accepted without a recipient"
    if command == "MAIL" and phase in ("mail", "rcpt"):
        return "MAIL accepted inside an open transaction"
    return None


def _state_key(phase: str, tls: bool, code: int, enhanced: str) -> str:
    return f"{phase}{'+tls' if tls else ''} {code or '-'}{(' ' + enhanced) if enhanced else ''}"


def explore(
    runner: Runner, profile: Profile, deadline: float, phase: Phase
) -> tuple[str, list[Candidate]]:
    """Walk the states; return the learned graph (``.dot``) and the candidates."""
    commands = _commands(profile)
    prefix = profile.prefix("greeted")
    start = "greeted"
    tls = profile.tls_active
    edges: Counter[tuple[str, str, str]] = Counter()
    seen: set[str] = {_state_key(start, tls, 250, "")}
    queue: deque[tuple[list[_Command], str]] = deque([([], start)])
    candidates: list[Candidate] = []
    runs = 0
    while queue and runs < MAX_EXPLORE_RUNS and time.monotonic() < deadline:
        path, _ = queue.popleft()
        for command in commands:
            if runs >= MAX_EXPLORE_RUNS or time.monotonic() >= deadline:
                break
            walked = [send(c.data, 1, may_fail=True) for c in path]
            events = [*prefix, *walked, send(command.data, 1)]
            events.append(send(b"QUIT\r\n", 1))
            obs, transcript = runner.run(events, read_timeout=profile.wait)
            runs += 1
            phase.runs += 1
            if not obs.conns:  # the runner's deadline passed before the connect
                break
            conn = obs.conns[0]
            replies, _ = parse(conn)
            base = 1 + sum(e.expect or 0 for e in prefix if e.dir == "c2s")
            codes = [r.reply.code for r in replies[base:]]
            enhanced = [str(r.reply.enhanced or "") for r in replies[base:]]
            state = start
            key = _state_key(state, tls, 250, "")
            for position, step in enumerate([*path, command]):
                if position >= len(codes):
                    break
                code = codes[position]
                rule = _violation(state, step.name, code)
                if rule is not None and position == len(path):
                    candidates.append(
                        _candidate(
                            events,
                            state,
                            step.name,
                            "accepted",
                            {"codes": [2, 3]},
                            rule,
                            transcript,
                        )
                    )
                state = _next_phase(state, step.name, code)
                new_key = _state_key(state, tls, code, enhanced[position])
                edges[(key, step.name, new_key)] += 1
                key = new_key
            if len(codes) > len(path) and key not in seen and len(path) + 1 < MAX_DEPTH:
                seen.add(key)
                queue.append(([*path, command], key))
            expected = base + len(path) + 2
            broken = judge("invalid", obs)
            if broken:
                candidates.append(
                    _candidate(events, state, command.name, "invalid", {}, broken, transcript)
                )
            elif len(replies) > expected:
                why = f"{len(replies)} replies where {expected} were due"
                candidates.append(
                    _candidate(events, state, command.name, "count", {}, why, transcript)
                )
    return _dot(edges), candidates


def _candidate(
    events: list[Event],
    state: str,
    verb: str,
    oracle: str,
    params: dict[str, Any],
    verdict: str,
    transcript: Transcript,
) -> Candidate:
    """A candidate whose trigger is the explored command (the one before QUIT)."""
    marked = list(events)
    index = len(events) - 2
    marked[index] = replace(events[index], extra={"trigger": True})
    probe = Probe(
        "explore",
        f"explore-{verb.lower()}-in-{state}",
        oracle,
        marked,
        verdict if oracle == "accepted" else f"{verb} after the explored path: {verdict}",
        state,
        verb,
        "medium",
        _SEQUENCE if oracle == "accepted" else "RFC 5321 §4.2 (one well-formed reply per command)",
        "503 bad sequence of commands" if oracle == "accepted" else "one well-formed reply",
        params,
    )
    return Candidate(probe, oracle, params, verdict, transcript)


def _dot(edges: Counter[tuple[str, str, str]]) -> str:
    lines = ["digraph smtp {", '  rankdir=LR; node [shape=box, fontname="monospace"];']
    for (source, label, target), count in sorted(edges.items()):
        lines.append(f'  "{source}" -> "{target}" [label="{label} x{count}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- generative -----------------------------------------------------------------------

_DELIMITERS = [
    *(b"\x00", b"\r", b"\n", b"\r\n", b"<", b">", b":", b"@", b" ", b'"', b"\\"),
    *(b"%n", b"\xff", b"[", b"]", b"=", b".", b"\t"),
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    body = data[:-2] if data.endswith(b"\r\n") else data
    choice = rng.randrange(6)
    if choice == 0 and body:
        at = rng.randrange(len(body) + 1)
        body = body[:at] + rng.choice(_DELIMITERS) + body[at:]
    elif choice == 1 and body:
        at = rng.randrange(len(body))
        chunk = body[at : at + rng.randint(1, 8)]
        body = body[:at] + chunk * rng.choice([2, 16, 128, 1024]) + body[at:]
    elif choice == 2 and body:
        body = body[: rng.randrange(len(body))]
    elif choice == 3:
        body = body.swapcase()
    elif choice == 4:
        size = rng.choice([10, 300, 5000])
        body = body + b" " + bytes(rng.choice(b"aZ9@<>:=.") for _ in range(size))
    else:
        at = rng.randrange(len(body) + 1)
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        body = body[:at] + noise + body[at:]
    return body + b"\r\n"


def generate(
    runner: Runner,
    profile: Profile,
    seed: int,
    deadline: float,
    phase: Phase,
    hang_bound: float,
) -> Iterator[Candidate]:
    """Mutated dialogues until ``deadline``; yields candidates for triage."""
    rng = random.Random(seed)
    # BDAT is left out: its reply legitimately waits for the chunk, which a mutated
    # size makes the server wait for (no hang to report).
    commands = [c for c in _commands(profile) if c.name != "BDAT"]
    visits: Counter[str] = Counter()
    paths = [[c] for c in commands] + [
        [commands[2], commands[3]],
        [commands[2], commands[3], commands[4]],
    ]
    while time.monotonic() < deadline - 1.0:
        weights = [1.0 / (1 + visits[" ".join(c.name for c in path)]) for path in paths]
        path = rng.choices(paths, weights)[0]
        visits[" ".join(c.name for c in path)] += 1
        mutated = rng.randrange(len(path))
        events = [*profile.prefix("greeted")]
        for index, command in enumerate(path):
            if index == mutated:
                data = _mutate(rng, command.data)
                if b"BDAT" in data.upper():
                    data = command.data
                events.append(send(data, 1, trigger=True))
                break
            events.append(send(command.data, 1))
        events += [send(b"NOOP\r\n", 1), send(b"QUIT\r\n", 1)]
        probe = Probe(
            "generative",
            f"generative-{path[mutated].name.lower()}",
            "crash",
            events,
            "a mutated command kills, stalls or garbles the server",
            "greeted",
            path[mutated].name,
            "high",
            "RFC 5321 §4.2, §4.5.3",
            "a reply, and the server stays up",
            hang=True,
        )
        obs, transcript = runner.run(events, read_timeout=profile.wait)
        phase.runs += 1
        found = judge_run(probe, obs, runner, hang_bound=hang_bound)
        if found is not None:
            oracle, params, verdict = found
            probe.oracle = oracle
            probe.params = params
            yield Candidate(probe, oracle, params, verdict, transcript)
