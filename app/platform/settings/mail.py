"""Email: the SMTP server, the sender, and the link an invitation to an organisation carries.

Read by app/platform/mail.py; the SMTP URL is checked at start-up with app/platform/smtp_url.py.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from app.platform.settings.base import MobilityBaseSettings
from app.platform.smtp_url import smtp_target


class MailSettings(MobilityBaseSettings):
    # --- Email (app/platform/mail.py): invitations to organisations ---
    # smtp://[user:password@]host[:port] (STARTTLS when offered) or smtps://…; unset: no email,
    # the inviting admin passes the token on.
    smtp_url: str | None = Field(default=None, repr=False)
    mail_from: str = "Mobility <no-reply@localhost>"
    # The app's accept link, with {token} where the invitation token goes.
    invitation_link: str | None = None

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        # Refused at start-up rather than at the first invitation.
        if value:
            smtp_target(value)
        return value or None
