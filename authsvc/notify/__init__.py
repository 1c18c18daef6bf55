"""Outgoing e-mail: SMTP when configured, otherwise an outbox folder that admins (and tests) can read.

The outbox is not a fake: it is how the embedded default delivers mail, and the admin panel shows it. Messages are
standard RFC 5322 files (``.eml``) so any mail tool can open them.
"""

from __future__ import annotations

import email.policy
import os
import secrets
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from typing import Protocol


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


def _message(sender: str, to: str, subject: str, body: str, renderer=None) -> EmailMessage:
    """multipart/alternative: the text the caller wrote, then (with a renderer) the same as HTML."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{secrets.token_hex(12)}@authsvc>"
    msg.set_content(body)
    if renderer is not None:
        msg.add_alternative(renderer.html(subject, body), subtype="html")
    return msg


def render(sender: str, to: str, subject: str, body: str, renderer=None) -> bytes:
    """The message as it would go on the wire. Paths that must cost the same whether or not a mail is sent (a reset
    for an unknown address) render it and drop it."""
    return _message(sender, to, subject, body, renderer).as_bytes()


class SmtpMailer:
    def __init__(self, *, host: str, port: int, username: str | None, password: str | None, starttls: bool,
                 sender: str, timeout: float = 10.0, renderer=None):
        self.host, self.port, self.username, self.password = host, port, username, password
        self.starttls, self.sender, self.timeout, self.renderer = starttls, sender, timeout, renderer

    def send(self, to: str, subject: str, body: str) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(_message(self.sender, to, subject, body, self.renderer))


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    to: str
    subject: str
    date: float
    body: str  # the text part
    html: str | None = None


class OutboxMailer:
    def __init__(self, folder: str, sender: str, renderer=None):
        self.folder = folder
        self.sender = sender
        self.renderer = renderer
        os.makedirs(folder, exist_ok=True)

    def send(self, to: str, subject: str, body: str) -> None:
        msg = _message(self.sender, to, subject, body, self.renderer)
        name = f"{os.times().elapsed:015.3f}-{secrets.token_hex(4)}.eml"
        tmp = os.path.join(self.folder, "." + name)
        with open(tmp, "wb") as fh:
            fh.write(msg.as_bytes())
        os.replace(tmp, os.path.join(self.folder, name))  # readers never see half a message

    def messages(self, to: str | None = None) -> list[OutboxMessage]:
        out = []
        for name in os.listdir(self.folder):
            if not name.endswith(".eml") or name.startswith("."):
                continue
            path = os.path.join(self.folder, name)
            with open(path, "rb") as fh:
                msg = BytesParser(policy=email.policy.default).parse(fh)
            if to and msg["To"] != to:
                continue
            text = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
            out.append(OutboxMessage(name, msg["To"], msg["Subject"], os.path.getmtime(path),
                                     text.get_content() if text is not None else "",
                                     html.get_content() if html is not None else None))
        out.sort(key=lambda m: (m.date, m.name), reverse=True)
        return out
