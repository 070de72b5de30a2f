"""Emails we send: today, an organisation's invitation to a new member.

Sent over SMTP (``MOBILITY_SMTP_URL``: ``smtp://[user:password@]host[:port]``, or ``smtps://…``
for TLS from the start), from ``MOBILITY_MAIL_FROM``. With a user and password, ``smtp://``
requires STARTTLS: credentials never cross the network in the clear, whatever a server (or
someone between us and it) says it offers. Without credentials (a local relay) STARTTLS is used
when offered.
An invitation carries the link ``MOBILITY_INVITATION_LINK`` with ``{token}`` replaced, or the
bare token when no link is set. Sending never fails the request that asked for it: the caller
is told whether the email went out and why not, and still holds the token to pass on itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from app.platform.settings import Settings
from app.platform.smtp_url import smtp_target

__all__ = ["InvitationEmail", "MailOutcome", "send_invitation"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class MailOutcome:
    sent: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InvitationEmail:
    """What an invitation email says: to whom, from which organisation, for which role, and
    the token that accepts it (the secret: never logged)."""

    to: str
    organisation: str
    role: str
    token: str
    expires_at: datetime


def _invitation(settings: Settings, invitation: InvitationEmail) -> EmailMessage:
    to, organisation, token = invitation.to, invitation.organisation, invitation.token
    link = settings.invitation_link.replace("{token}", token) if settings.invitation_link else None
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = f"You are invited to join {organisation}"
    how = (
        f"Accept it here, signed in with this email address:\n\n  {link}\n"
        if link
        else f"Accept it in the app, signed in with this email address, with this code:\n\n"
        f"  {token}\n"
    )
    message.set_content(
        f"{organisation} invites you to book shared vehicles on its account, as "
        f"{invitation.role.lower()}.\n\n{how}\n"
        f"The invitation is valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC and only "
        f"for {to}.\n"
        "If you did not expect it, ignore this email.\n"
    )
    return message


async def send_invitation(settings: Settings, invitation: InvitationEmail) -> MailOutcome:
    if not settings.smtp_url:
        return MailOutcome(False, "no mail server is configured (MOBILITY_SMTP_URL)")
    try:
        target = smtp_target(settings.smtp_url)
    except ValueError as exc:
        return MailOutcome(False, str(exc))
    try:
        message = _invitation(settings, invitation)
    except ValueError as exc:  # a header the email library will not write (MOBILITY_MAIL_FROM)
        log.warning("invitation email not written: %s", type(exc).__name__)
        return MailOutcome(False, "the email could not be written (check MOBILITY_MAIL_FROM)")
    if target.implicit_tls:
        start_tls: bool | None = False
    else:
        # Required with credentials (see the module docstring); opportunistic without.
        start_tls = True if target.username else None
    try:
        # One deadline for the whole exchange: aiosmtplib's timeout is per command, and the
        # admin's request waits for this.
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await aiosmtplib.send(
                message,
                sender=_address_of(settings.mail_from),
                recipients=[
                    invitation.to
                ],  # exactly the invitee, never what a header might parse into
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.implicit_tls,
                start_tls=start_tls,
                timeout=SEND_TIMEOUT_SECONDS,
            )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # Never the message (it carries the token) nor the server's words (they may quote the
        # invitee's address): the kind of failure and the server's reply code are enough.
        code = getattr(exc, "code", None)
        log.warning(
            "invitation email to the mail server %s failed: %s%s",
            target.host,
            type(exc).__name__,
            f" ({code})" if code is not None else "",
        )
        return MailOutcome(False, f"the mail server did not take it: {type(exc).__name__}")
    return MailOutcome(True)


def _address_of(mailbox: str) -> str:
    """The bare address of ``Name <address>`` (the SMTP envelope sender)."""
    return parseaddr(mailbox)[1] or mailbox
