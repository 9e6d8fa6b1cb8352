"""E-mail templates: one per notification_type (a default for the rest) and the daily digest,
each rendered as plain text and HTML. Values are escaped for HTML; links arrive already
signed (kernel.tracking)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """`subject` is a string.Template over $title and $type; `lead` opens the body; `action`
    labels the link to the notification's action_url."""

    subject: str
    lead: str
    action: str


DEFAULT = EmailTemplate(subject="$title", lead="", action="Open in Switchboard")

TEMPLATES: dict[str, EmailTemplate] = {
    "new_post": EmailTemplate("New post: $title", "An analyst you follow posted.", "Read the post"),
    "urgent_post": EmailTemplate(
        "Urgent: $title", "An analyst you follow posted an urgent update.", "Read it now"
    ),
    "payment_success": EmailTemplate(
        "Payment received: $title", "Thank you, your payment went through.", "View receipt"
    ),
    "payment_failed": EmailTemplate(
        "Payment failed: $title", "We could not take your payment.", "Update payment details"
    ),
    "subscription_expiring": EmailTemplate(
        "Your subscription is expiring: $title",
        "Your subscription ends soon. Renew to keep your access.",
        "Renew",
    ),
    "subscription_expired": EmailTemplate(
        "Your subscription has expired: $title", "Your subscription has ended.", "Resubscribe"
    ),
    "new_review": EmailTemplate("New review: $title", "You received a review.", "See the review"),
    "moderation_action": EmailTemplate(
        "About your content: $title", "A moderator took action on your content.", "See details"
    ),
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class Item:
    """One notification as an e-mail shows it; `link` is the tracked URL (or None)."""

    title: str
    message: str
    link: str | None


_PAGE = """<!doctype html>
<html><body style="font-family:sans-serif;max-width:600px;margin:auto">
{body}
<p style="color:#888;font-size:12px">You receive this because of your notification settings.
<a href="{unsubscribe}">Unsubscribe</a> from these e-mails.</p>
<img src="{pixel}" width="1" height="1" alt="" style="display:block;border:0">
</body></html>
"""

_FOOTER = "\n\n--\nUnsubscribe from these e-mails: {unsubscribe}\n"


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_notification(
    notification_type: str, item: Item, *, unsubscribe: str, pixel: str
) -> Rendered:
    """One notification's e-mail in its type's template."""
    template = TEMPLATES.get(notification_type, DEFAULT)
    subject = _one_line(
        Template(template.subject).safe_substitute(title=item.title, type=notification_type)
    )
    text_parts = [p for p in (template.lead, item.title, item.message) if p]
    if item.link:
        text_parts.append(f"{template.action}: {item.link}")
    e = html.escape
    body = []
    if template.lead:
        body.append(f"<p>{e(template.lead)}</p>")
    body.append(f"<h2>{e(item.title)}</h2>")
    if item.message:
        body.append("<p>" + e(item.message).replace("\n", "<br>") + "</p>")
    if item.link:
        body.append(f'<p><a href="{e(item.link)}">{e(template.action)}</a></p>')
    return Rendered(
        subject=subject,
        text="\n\n".join(text_parts) + _FOOTER.format(unsubscribe=unsubscribe),
        html=_PAGE.format(body="\n".join(body), unsubscribe=e(unsubscribe), pixel=e(pixel)),
    )


def render_digest(day: str, items: list[Item], *, unsubscribe: str, pixel: str) -> Rendered:
    """The daily digest: every grouped item of `day` (YYYY-MM-DD, the user's local day)."""
    count = len(items)
    subject = f"Your daily digest for {day}: {count} update{'s' if count != 1 else ''}"
    lines = [f"Your updates for {day}:"]
    e = html.escape
    body = [f"<h2>Your updates for {e(day)}</h2>", "<ul>"]
    for item in items:
        line = f"- {item.title}"
        if item.message:
            line += f": {_one_line(item.message)}"
        if item.link:
            line += f"\n  {item.link}"
        lines.append(line)
        title = f'<a href="{e(item.link)}">{e(item.title)}</a>' if item.link else e(item.title)
        extra = f"<br>{e(_one_line(item.message))}" if item.message else ""
        body.append(f"<li>{title}{extra}</li>")
    body.append("</ul>")
    return Rendered(
        subject=subject,
        text="\n".join(lines) + _FOOTER.format(unsubscribe=unsubscribe),
        html=_PAGE.format(body="\n".join(body), unsubscribe=e(unsubscribe), pixel=e(pixel)),
    )
