"""Outbound e-mail over SMTP (APPSTORE_SMTP_URL): the dispatcher's "email" channel.

`smtp://[user:password@]host[:port]` (add `?starttls=true` to upgrade) or
`smtps://…` (TLS from the start). One connection per batch. Each message carries a
Message-ID derived from its delivery, so a resend after a crash (at-least-once) is
recognisable as the same message.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from application.dispatch import DueDelivery, Sent

DEFAULT_SENDER = "App & Service Store <no-reply@appstore.invalid>"


class SmtpMailer:
    """Sends e-mail deliveries (payload `{to, subject, body}`) through one SMTP server."""

    name = "email"

    def __init__(self, smtp_url: str, *, sender: str = DEFAULT_SENDER, timeout: float = 10.0):
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("APPSTORE_SMTP_URL must look like smtp://user:pw@host:587")
        self.tls = parts.scheme == "smtps"
        self.starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() == "true"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout

    def _connect(self) -> smtplib.SMTP:
        if self.tls:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.starttls:
            smtp.starttls(context=ssl.create_default_context())
        return smtp

    def message(self, delivery: DueDelivery) -> EmailMessage:
        """The e-mail of one delivery."""
        content = json.loads(delivery.payload)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = str(content["to"])
        message["Subject"] = str(content["subject"])
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{delivery.id}@appstore>"
        message.set_content(str(content["body"]))
        return message

    def send(self, deliveries: Sequence[DueDelivery]) -> list[Sent]:
        started = time.perf_counter()
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as error:
            return [Sent(False, error=f"SMTP connection failed: {error}")] * len(deliveries)
        results = []
        with smtp:
            try:
                if self.username:
                    smtp.login(self.username, self.password or "")
            except smtplib.SMTPException as error:
                return [Sent(False, error=f"SMTP login failed: {error}")] * len(deliveries)
            for delivery in deliveries:
                results.append(self._send_one(smtp, delivery, started))
        return results

    def _send_one(self, smtp: smtplib.SMTP, delivery: DueDelivery, started: float) -> Sent:
        try:
            smtp.send_message(self.message(delivery))
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)
            return Sent(
                False, codes[0] if codes else None, f"recipient refused: {error}", final=permanent
            )
        except (OSError, smtplib.SMTPException) as error:
            return Sent(False, error=f"{type(error).__name__}: {error}")
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return Sent(True, 250, latency_ms=latency_ms)
