"""JSON shapes of Twilio's REST API (Message resource, errors), as the fake sends them."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

__all__ = [
    "MAX_BODY", "QUICK_REPLY_MAX", "content_resource", "message_resource", "segments",
    "twilio_error", "utf16_len",
]  # fmt: skip

MAX_BODY = 1600  # in UTF-16 code units: an emoji outside the BMP counts twice (error 21617)
QUICK_REPLY_MAX = 1024  # a twilio/quick-reply body


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    63016: "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template.",
}
_DEFAULT_CODES = {400: 21211, 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def twilio_error(status: int, code: int | None = None, message: str | None = None) -> web.Response:
    """Twilio's error JSON: ``{"code", "message", "more_info", "status"}``."""
    code = code if code is not None else _DEFAULT_CODES.get(status, status)
    body = {
        "code": code,
        "message": message or _MESSAGES.get(code, f"Error {code} (injected by FakeTwilio)"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)


def segments(to: str, body: str) -> int:
    if to.startswith("whatsapp:") or not body:
        return 1
    per, single = (153, 160) if body.isascii() else (67, 70)
    length = utf16_len(body)
    return 1 if length <= single else -(-length // per)


def message_resource(
    account_sid: str,
    sid: str,
    to: str,
    from_: str,
    body: str,
    fields: dict[str, str],
    num_media: int,
) -> dict[str, Any]:
    """A just-created outbound Message, as ``POST .../Messages.json`` returns it (201)."""
    now = format_datetime(datetime.now(UTC))
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": fields.get("MessagingServiceSid"),
        "num_media": str(num_media),
        "num_segments": str(segments(to, body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def content_resource(
    account_sid: str, sid: str, data: dict[str, Any], types: dict[str, Any]
) -> dict[str, Any]:
    """A Content resource, as ``POST https://content.twilio.com/v1/Content`` returns it."""
    now = datetime.now(UTC).isoformat()
    url = f"https://content.twilio.com/v1/Content/{sid}"
    return {
        "sid": sid,
        "account_sid": account_sid,
        "friendly_name": data.get("friendly_name"),
        "language": data.get("language") or "en",
        "variables": data.get("variables") or {},
        "types": types,
        "url": url,
        "date_created": now,
        "date_updated": now,
        "links": {"approval_create": f"{url}/ApprovalRequests/whatsapp"},
    }
