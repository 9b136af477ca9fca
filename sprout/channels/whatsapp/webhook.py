"""Twilio's inbound webhook: verify, validate, record, dispatch, answer empty TwiML at once.

The model is never called here: Twilio gives a webhook 15 s, an answer can take longer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, Field, ValidationError
from quart import Blueprint, Response, abort, request
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming, Media
from sprout.core.ports import Accept

log = get_logger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_MEDIA = 10


class InboundForm(BaseModel):
    """The fields of Twilio's Messaging webhook that Sprout relies on."""

    message_sid: str = Field(alias="MessageSid", pattern=r"^[A-Z]{2}[0-9a-fA-F]{32}$")
    sender: str = Field(alias="From", pattern=r"^whatsapp:\+?[0-9]{5,16}$")
    to: str = Field(alias="To", max_length=64)
    body: str = Field("", alias="Body", max_length=20_000)
    num_media: int = Field(0, alias="NumMedia", ge=0, le=MAX_MEDIA)
    # A tapped quick-reply button: its id (the body is then its label).
    button_payload: str = Field("", alias="ButtonPayload", max_length=64)


class SignatureCheck:
    def __init__(self, auth_token: str, public_url: str | None) -> None:
        self._validator = RequestValidator(auth_token)
        self._public_url = public_url.rstrip("/") if public_url else None

    def signed_url(self) -> str:
        """The URL Twilio signed: the configured public URL, else this request's URL as the
        client saw it (proxies such as ngrok and Heroku's router say so in X-Forwarded-*)."""
        query = request.query_string.decode("latin-1")
        path = request.path + (f"?{query}" if query else "")
        if self._public_url:
            return self._public_url + path
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
        return f"{proto}://{host}{path}"

    def valid(self, form: MultiDict[str, str]) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        try:
            return bool(self._validator.validate(self.signed_url(), form, signature))
        except ValueError:  # a URL it cannot parse, from a forged Host: "a:b", "[x"
            return False


async def _signed_form(check: SignatureCheck) -> MultiDict[str, str]:
    if not request.headers.get("X-Twilio-Signature"):
        abort(403)
    try:
        form = await request.form
    except (ValueError, UnicodeDecodeError):
        abort(400)
    if not check.valid(form):
        abort(403)
    if any("\x00" in value for _, value in form.items(multi=True)):
        abort(400)  # not text Twilio would send; PostgreSQL can neither store nor compare NUL
    return form


def _media(form: MultiDict[str, str], count: int) -> tuple[Media, ...]:
    return tuple(
        Media(url=form.get(f"MediaUrl{i}", ""), content_type=form.get(f"MediaContentType{i}", ""))
        for i in range(count)
        if form.get(f"MediaUrl{i}")
    )


def whatsapp_blueprint(
    check: SignatureCheck,
    accept: Accept,
    on_status: Callable[[str, str, str | None], Awaitable[None]],
) -> Blueprint:
    blueprint = Blueprint("whatsapp", __name__)

    @blueprint.post("/whatsapp")
    @blueprint.post("/text")
    async def inbound() -> Response:
        form = await _signed_form(check)
        try:
            fields = InboundForm.model_validate(form.to_dict())
        except ValidationError:
            abort(400)
        incoming = Incoming(
            channel="whatsapp",
            user_id=fields.sender,
            text=fields.body,
            message_id=fields.message_sid,
            media=_media(form, fields.num_media),
            bot_address=fields.to,
            payload=fields.button_payload,
        )
        fresh = await accept(incoming)
        log.info("whatsapp_inbound", user=user_ref(incoming.user_id), duplicate=not fresh)
        return Response(EMPTY_TWIML, status=200, content_type="text/xml")

    @blueprint.post("/whatsapp/status")
    async def status() -> Response:
        form = await _signed_form(check)
        sid, state = form.get("MessageSid", ""), form.get("MessageStatus", "")
        if not sid or not state or len(sid) > 64 or len(state) > 32:
            abort(400)
        await on_status(sid, state, (form.get("ErrorCode") or None))
        return Response("", status=204)

    return blueprint
