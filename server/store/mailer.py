"""Optional SMTP delivery of the NTF-1 outbox (stdlib smtplib, run in a worker thread).

Delivery happens outside any database transaction: the pending rows are read, the mails sent
over one SMTP connection, and the sent ones marked in a second short transaction, so a slow
mail server never holds a database lock. A mail the server refuses stays pending and is tried
again on the next call; one that has no recipient at all is marked sent, since no retry can
deliver it. Two deliverers running at once may send a mail twice (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import select, update

from server.context import system_clock
from server.store.db import Store
from server.store.models import Notification

log = logging.getLogger("enrollab.mailer")
SENDER = "enrollab@localhost"


@dataclass(frozen=True)
class _Mail:
    id: int
    recipients: tuple[str, ...]
    subject: str
    body: str


def _message(mail: _Mail, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(mail.recipients)
    msg["Subject"] = mail.subject
    msg["X-Enrollab-Notification"] = str(mail.id)
    msg.set_content(mail.body)
    return msg


def _send_all(mails: Sequence[_Mail], host: str, port: int, sender: str, timeout: float) -> list[int]:
    """Blocking: send over one connection; the ids the server accepted."""
    sent: list[int] = []
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        for mail in mails:
            try:
                smtp.send_message(_message(mail, sender), from_addr=sender, to_addrs=list(mail.recipients))
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                log.warning("notification %s not delivered: %s", mail.id, exc)
                continue
            sent.append(mail.id)
    return sent


async def deliver_pending(
    store: Store,
    smtp_host: str,
    smtp_port: int,
    *,
    sender: str = SENDER,
    batch: int = 500,
    timeout: float = 30.0,
    clock: Callable[[], datetime] = system_clock,
) -> int:
    """NTF-1: send the outbox's pending notifications by SMTP and mark them sent; how many were sent.

    Connection errors (`OSError`, `smtplib.SMTPException`) propagate: the rows stay pending.
    """
    async with store.transaction() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.sent_at.is_(None)).order_by(Notification.id).limit(batch)
        )
        pending = [_Mail(n.id, tuple(n.recipients or ()), n.subject, n.body) for n in rows]
    if not pending:
        return 0
    undeliverable = [m.id for m in pending if not m.recipients]
    mails = [m for m in pending if m.recipients]
    sent = await asyncio.to_thread(_send_all, mails, smtp_host, smtp_port, sender, timeout) if mails else []
    done = sent + undeliverable
    if done:
        async with store.transaction() as session:
            await session.execute(
                update(Notification)
                .where(Notification.id.in_(done), Notification.sent_at.is_(None))
                .values(sent_at=clock())
                .execution_options(synchronize_session=False)
            )
    return len(sent)


async def delivery_loop(
    store: Store,
    smtp_host: str,
    smtp_port: int,
    *,
    interval: float = 30.0,
    clock: Callable[[], datetime] = system_clock,
) -> None:
    """Deliver the outbox every `interval` seconds until cancelled; an unreachable relay is logged,
    and its mails stay pending for the next round."""
    while True:
        try:
            sent = await deliver_pending(store, smtp_host, smtp_port, clock=clock)
            if sent:
                log.info("delivered %d notification(s) via %s:%d", sent, smtp_host, smtp_port)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("SMTP relay %s:%d unavailable (%s); mails stay queued", smtp_host, smtp_port, exc)
        await asyncio.sleep(interval)
