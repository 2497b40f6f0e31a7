"""SPEC rules the server suite cannot observe from outside (admin API + device protocol only),
and why. The report lists them so that "no test" is never mistaken for "passed"."""

from __future__ import annotations

UNOBSERVABLE: tuple[tuple[str, str], ...] = (
    ("EC-8", "unguessable codes: randomness is not observable in a few samples; only uniqueness of live codes is"),
    ("USR-2", "a reset link reaches the administrator by e-mail; the suite has no mailbox of a foreign server"),
    ("USR-3", "certificate login needs an HTTPS admin listener asking for client certificates and a client root CA "
              "per account; PROTOCOL §3 defines neither (the reference server's: docs/decisions.md, USR-3)"),
    (
        "LCK-2",
        "the lift by time needs the lockout time (minutes) to pass; the suite checks the lift by activation "
        "and by the platform's unlock (POST /devices/unlock)",
    ),
    ("NTF-1", "e-mail delivery is outside the protocol; the outbox is visible only on the reference server"),
    ("ACO-1", "the cloud-office system is external; no ACO endpoint is part of PROTOCOL.md"),
    ("FW-5", "first contact of a pre-claimed device with a non-DES server cannot be staged twice from outside"),
    ("PRF-3", "what an enrolled device keeps is the device's memory, observed by the device suite, not here"),
)
