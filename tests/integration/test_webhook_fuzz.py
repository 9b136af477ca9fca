"""Fuzzes the WhatsApp webhook with over 10,000 hostile requests against the real Quart app.

Approach: the runtime (`bootstrap.running`: the SQLite store and the job dispatcher) and the app
must start once, not once per example, or 10,000 requests would take many minutes. So each test
owns an event loop (`asyncio.Runner`), starts `app.test_app()` on it, and then runs Hypothesis
*inside* the test: `Fuzzer.fuzz` wraps a small `@given` function per request kind, each example
a batch of generated requests sent one by one with `runner.run(client.post(...))`. The loop
pauses between requests; jobs of accepted messages carry on at the next `run`. The fuzzer counts
every status by kind, so once Hypothesis is done the test asserts the total number of requests,
the statuses each kind produced, and what reached the model.

Requests go through Quart's test client with a raw ASGI scope (`scope_base`), so headers and
query strings carry raw bytes: anything that h11, Hypercorn's HTTP/1.1 parser, would pass on.

Everything without a valid signature is sent first; after it, `accept` must never have been
called and the fake model and fake Twilio must have seen nothing. Then validly signed garbage:
there a well-formed message may legitimately be answered, so model calls are bounded by the
messages accepted as new instead. Smaller runs cover the webhook without SPROUT_PUBLIC_URL
(the URL rebuilt from Host and X-Forwarded-*) and signed requests against PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from quart.typing import TestClientProtocol as Client  # a "Test..." name pytest would collect
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from sprout.bootstrap import running
from sprout.core.delivery import InProcessDispatcher
from sprout.core.messages import Incoming
from sprout.core.ports import Accept
from sprout.core.settings import Settings
from sprout.entrypoints.server import create_app
from sprout.queue import RedisJobs
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import BOT_NUMBER, PUBLIC_URL

pytestmark = [
    pytest.mark.integration,
    # Quart's multipart parser drops the temporary file of a part the body cuts short without
    # closing it (the collector does, with a ResourceWarning); nothing Sprout's code can reach.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <function SpooledTemporaryFile.__del__"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]

Pairs = list[tuple[str, str]]
Jobs = InProcessDispatcher | RedisJobs
Headers = tuple[tuple[bytes, bytes], ...]

FORM = b"application/x-www-form-urlencoded"
BOUNDARY = b"sprout-fuzz-7f3a9c1e5b"  # long and odd, so generated text never contains it
MAX_BODY = 64 * 1024
INBOUND_PATHS = ("/whatsapp", "/text")
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
SENDER = re.compile(r"whatsapp:\+?[0-9]{5,16}")


# --- the request and its sender -------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request, as raw as a server receives it."""

    kind: str
    path: str
    body: bytes = b""
    headers: Headers = ()
    query: bytes = b""

    def __repr__(self) -> str:  # Hypothesis prints failing examples: keep huge bodies readable
        body = self.body if len(self.body) <= 400 else self.body[:400] + b"..."
        return (
            f"Probe({self.kind!r}, {self.path!r}, body={body!r} ({len(self.body)} bytes), "
            f"headers={self.headers!r}, query={self.query!r})"
        )


def field_value(raw: bytes) -> bytes:
    """`raw` as a header value that h11, Hypercorn's HTTP/1.1 parser, lets through: no NUL, CR,
    LF, VT or FF, no surrounding blanks. It refuses anything else before the app runs."""
    return raw.translate(None, b"\x00\r\n\x0b\x0c").strip(b" \t")


def headers(
    body: bytes,
    content_type: bytes | None = FORM,
    signature: bytes | None = None,
    *extra: tuple[bytes, bytes],
    content_length: bytes | None = None,
    host: bytes = b"sprout.example.org",
) -> Headers:
    """Raw headers as Hypercorn passes them on (lower-case names, h11-valid values);
    Content-Length is the true one unless `content_length` says otherwise (b"" leaves it out,
    as in a chunked upload)."""
    found: list[tuple[bytes, bytes]] = [(b"host", host)]
    length = str(len(body)).encode() if content_length is None else content_length
    if length:
        found.append((b"content-length", length))
    if content_type is not None:
        found.append((b"content-type", content_type))
    if signature is not None:
        found.append((b"x-twilio-signature", signature))
    return tuple((name.lower(), field_value(value)) for name, value in (*found, *extra))


class Signer:
    """Signs like Twilio: the URL it was told to call, plus every decoded form field."""

    def __init__(self, auth_token: str, base_url: str = PUBLIC_URL) -> None:
        self._validator = RequestValidator(auth_token)
        self._base_url = base_url

    def sign(
        self, path: str, pairs: Pairs, query: bytes = b"", base_url: str | None = None
    ) -> bytes:
        url = (base_url or self._base_url) + path
        if query:
            url += "?" + query.decode("latin-1")  # how the webhook rebuilds it
        signature: str = self._validator.compute_signature(url, MultiDict(pairs))
        return signature.encode()


class CountingAccept:
    """The real runtime's `accept`, counting what the webhook hands over: forged requests must
    never get as far as `accept`, and what does must look like Twilio's formats."""

    def __init__(self, accept: Accept) -> None:
        self._accept = accept
        self.calls = 0
        self.fresh: list[Incoming] = []

    async def __call__(self, incoming: Incoming) -> bool:
        self.calls += 1
        fresh = await self._accept(incoming)
        if fresh:
            self.fresh.append(incoming)
        return fresh


class Fuzzer:
    def __init__(
        self, runner: asyncio.Runner, client: Client, runtime: CountingAccept, jobs: Jobs
    ) -> None:
        self.runner = runner
        self.client = client
        self.runtime = runtime
        self.jobs = jobs
        self.statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)

    @property
    def sent(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())

    def send(self, probe: Probe) -> int:
        # scope_base replaces the scope's headers and query string with our raw bytes.
        scope = {"headers": list(probe.headers), "query_string": probe.query}
        response = self.runner.run(self.client.post(probe.path, data=probe.body, scope_base=scope))
        status = response.status_code
        self.statuses[probe.kind][status] += 1
        assert status < 500, f"{status} for {probe!r}"
        return status

    def fuzz(self, strategy: st.SearchStrategy[Probe], requests: int, batch: int = 10) -> None:
        """Send `requests` probes, `batch` per Hypothesis example: its fixed cost per example
        is larger than a request's, so batching halves the run time."""

        @settings(
            max_examples=requests // batch,
            deadline=None,
            # No example database: every call shares this inner function's name, so saved
            # examples of one kind would be replayed against another kind's strategy.
            database=None,
            # No shrinking: `send` names the exact failing request, while shrinking batches
            # against a live app takes minutes.
            phases=[Phase.generate],
            # The same requests every run, so `make test` passes or fails reproducibly;
            # SPROUT_FUZZ_EXPLORE=1 draws new ones (run it now and then, and keep what it finds
            # as a regression test).
            derandomize=os.environ.get("SPROUT_FUZZ_EXPLORE") != "1",
            suppress_health_check=list(HealthCheck),  # big inputs and a real app are the point
        )
        @given(st.lists(strategy, min_size=batch, max_size=batch))
        def some(probes: list[Probe]) -> None:
            for probe in probes:
                self.send(probe)

        some()

    def settle(self, timeout: float = 30.0) -> None:
        """Run the loop until the jobs of accepted messages are done."""

        async def idle() -> None:
            dispatcher = self.jobs
            async with asyncio.timeout(timeout):
                # The dispatcher offers no "idle" event to wait on, hence the polling.
                while isinstance(dispatcher, InProcessDispatcher) and dispatcher.busy:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # a wrongly dispatched job would have reached the fakes

        self.runner.run(idle())


def fuzz_settings(
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    data_dir: Path,
    public_url: str | None = PUBLIC_URL,
    database_url: str | None = None,
) -> Settings:
    return Settings(
        _env_file=None,
        openai_base_url=fake_openai.base_url,
        openai_api_key=SecretStr("test-key"),
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=SecretStr(fake_twilio.auth_token),
        twilio_whatsapp_from=BOT_NUMBER,
        twilio_api_base_url=fake_twilio.base_url,
        public_url=public_url,
        data_dir=data_dir,
        database_url=database_url,
    )


@contextmanager
def serving(settings: Settings) -> Iterator[Fuzzer]:
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        runtime = runner.run(stack.enter_async_context(running(settings)))
        counting = CountingAccept(runtime.accept)
        test_app = create_app(replace(runtime, accept=counting)).test_app()
        runner.run(test_app.startup())
        fuzzer = Fuzzer(runner, test_app.test_client(), counting, runtime.jobs)
        try:
            yield fuzzer
        finally:
            runner.run(test_app.shutdown())
            runner.run(stack.aclose())  # stops the runtime, which drains jobs


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment too: a developer's REDIS_URL or DATABASE_URL must not
    turn this into a test of their services."""
    ours = ("OPENAI", "TWILIO", "TELEGRAM", "SPROUT", "DATABASE_URL", "REDIS_URL", "PORT")
    for name in list(os.environ):
        if name.startswith(ours):
            monkeypatch.delenv(name)


# --- building blocks ------------------------------------------------------------------------

TWILIO_FIELDS = (
    "MessageSid", "SmsMessageSid", "SmsSid", "AccountSid", "MessagingServiceSid", "From", "To",
    "Body", "NumMedia", "NumSegments", "ProfileName", "WaId", "MessageStatus", "ErrorCode",
    "MediaUrl0", "MediaContentType0", "MediaUrl9", "MediaUrl10", "ButtonText", "Latitude",
)  # fmt: skip
NASTY = (
    "", " ", "0", "-1", "10", "11", "1.0", "1e1", "0x3", " 3", "3 ", "+3", "٣", "３", "NaN", "inf",
    "9" * 80, "9" * 5000, "null", "[]", "{}", "\x00", "%00", "\r\n", "\u202e", "\ufeff", "\ud7ff",
    "whatsapp:", "whatsapp:+", "whatsapp:+44 7700 900001", "whatsapp:+٤٤٧٧٠٠٩٠٠٠٠١",
    "WHATSAPP:+447700900001", "sms:+447700900001", "+447700900001", "whatsapp:+1234",
    "whatsapp:+12345678901234567", "SM" + "0" * 31, "SM" + "g" * 32, "sm" + "a" * 32,
    "SM" + "0" * 33, "<Response><Message>hi</Message></Response>", "'; DROP TABLE inbound; --",
    "${jndi:ldap://x/a}", "../../etc/passwd", "Activities dinosaurs", "STOP", "forget me",
)  # fmt: skip
WRONG_SIDS = (
    "", "SM", "SM123", "SM" + "a" * 31, "SM" + "a" * 33, "sm" + "a" * 32, "S1" + "a" * 32,
    "SM" + "z" * 32, "ＳＭ" + "a" * 32, "SM" + "a" * 32 + "\n", " SM" + "a" * 32,
)  # fmt: skip
WRONG_SENDERS = (
    "", "whatsapp:", "whatsapp:+", "+447700900001", "447700900001", "whatsapp:+1234",
    "whatsapp:+12345678901234567", "whatsapp:+44 7700", "whatsapp:+４４７７００９",
    "Whatsapp:+447700900001", "whatsapp:+447700900001\n", "telegram:123456",
)  # fmt: skip
WRONG_NUM_MEDIA = ("", "-1", "11", "1000000", "1.0", "1e1", "0x3", "three", "٣", "9" * 5000)

control_text = st.text(st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\x85\u2028"))
long_text = st.builds(  # past Body's 20,000-character limit, at times past 64 KiB encoded
    lambda piece, length: (piece * length)[:length],
    st.text(min_size=1, max_size=3),
    st.integers(300, 25_000),
)
short_values = st.one_of(st.text(max_size=40), st.sampled_from(NASTY), control_text)
# One value in 16 is long: enough of them, without every form being too big to read.
values = st.integers(0, 15).flatmap(lambda roll: long_text if roll == 0 else short_values)
MEDIA_FIELDS = tuple(
    f"{kind}{index}"
    for kind in ("MediaUrl", "MediaContentType")
    for index in (0, 1, 2, 9, 10, 11, 99, -1)
)
media_names = st.sampled_from(MEDIA_FIELDS)
names = st.sampled_from(TWILIO_FIELDS + MEDIA_FIELDS) | st.text(max_size=20)
random_pairs = st.lists(st.tuples(names, values), max_size=8)
# Multipart field names go inside a quoted header parameter; the signed kinds keep to names
# that survive that unchanged, so the signature covers exactly what the server decodes.
SAFE_NAME = re.compile(r"[A-Za-z0-9_]+")

forged_signature = (
    st.one_of(
        st.binary(min_size=1, max_size=64),
        st.text(min_size=1, max_size=40).map(lambda text: text.encode()),
        st.binary(min_size=20, max_size=20).map(base64.b64encode),
    )
    .map(field_value)
    .filter(bool)  # an empty header is "no signature", which maybe_signature covers
)
maybe_signature = st.one_of(st.none(), st.just(b""), forged_signature)


@st.composite
def twilio_form(draw: st.DrawFn) -> Pairs:
    """A well-formed inbound WhatsApp message, as Twilio sends it, with any text in Body."""
    sid = "SM" + draw(st.binary(min_size=16, max_size=16)).hex()
    # A few dozen senders: a sender's first message gets the fixed welcome, later ones go to
    # the model (up to the rate limit), so the signed phase really exercises model calls.
    sender = f"whatsapp:+44770090{draw(st.integers(0, 39)):04d}"
    media = draw(st.integers(0, 3))
    pairs = [
        ("MessageSid", sid), ("SmsMessageSid", sid), ("AccountSid", "AC" + "0" * 32),
        ("From", sender), ("To", BOT_NUMBER), ("Body", draw(values)), ("NumMedia", str(media)),
        ("ProfileName", draw(st.text(max_size=30))), ("WaId", sender.removeprefix("whatsapp:+")),
    ]  # fmt: skip
    for index in range(media):
        pairs += [
            (f"MediaUrl{index}", f"https://api.twilio.com/Media/ME{index:032x}"),
            (f"MediaContentType{index}", draw(st.sampled_from(("image/jpeg", "audio/ogg", "")))),
        ]
    return pairs


def _set(pairs: Pairs, name: str, value: str) -> Pairs:
    return [(key, val) for key, val in pairs if key != name] + [(name, value)]


@st.composite
def mutated_form(draw: st.DrawFn) -> Pairs:
    """A Twilio form with zero to three things wrong with it (zero: it is still well-formed)."""
    pairs = draw(twilio_form())
    for _ in range(draw(st.integers(0, 3))):
        match draw(st.integers(0, 7)):
            case 0:  # a field missing, required or not
                name = draw(st.sampled_from([key for key, _ in pairs] or ["Body"]))
                pairs = [(key, val) for key, val in pairs if key != name]
            case 1:
                pairs = _set(pairs, "MessageSid", draw(st.sampled_from(WRONG_SIDS) | values))
            case 2:
                pairs = _set(pairs, "From", draw(st.sampled_from(WRONG_SENDERS) | values))
            case 3:
                pairs = _set(pairs, "NumMedia", draw(st.sampled_from(WRONG_NUM_MEDIA) | values))
            case 4:  # media without NumMedia saying so
                pairs = [(key, val) for key, val in pairs if key != "NumMedia"]
                pairs += draw(st.lists(st.tuples(media_names, values), min_size=1, max_size=4))
            case 5:  # a repeated key: the app reads the first, the signature covers all
                pairs.append((draw(st.sampled_from(TWILIO_FIELDS)), draw(values)))
            case 6:
                pairs = _set(pairs, draw(st.sampled_from(("To", "Body"))), draw(values))
            case _:
                pairs += draw(st.lists(st.tuples(names, values), max_size=3))
    return pairs


def multipart(pairs: Pairs, boundary: bytes = BOUNDARY) -> bytes:
    parts = [
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        + value.encode() + b"\r\n"
        for name, value in pairs
    ]  # fmt: skip
    return b"".join(parts) + b"--" + boundary + b"--\r\n"


def encoded(draw: st.DrawFn, pairs: Pairs) -> tuple[bytes, bytes]:
    """(body, content type): urlencoded as Twilio does, or multipart where names allow."""
    if all(SAFE_NAME.fullmatch(name) for name, _ in pairs) and draw(st.integers(0, 4)) == 0:
        return multipart(pairs), b"multipart/form-data; boundary=" + BOUNDARY
    return urlencode(pairs).encode(), FORM


# --- requests without a valid signature ----------------------------------------------------


@st.composite
def unsigned_form(draw: st.DrawFn) -> Probe:
    pairs = draw(twilio_form() | random_pairs)
    body, content_type = encoded(draw, pairs)
    signature = draw(st.sampled_from((None, b"")))
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("unsigned", path, body, headers(body, content_type, signature))


@st.composite
def forged_signature_form(draw: st.DrawFn, real: Signer) -> Probe:
    """A plausible form whose signature is wrong in one of the ways an attacker would try."""
    pairs = draw(mutated_form())
    path = draw(st.sampled_from(INBOUND_PATHS))
    other_path = "/whatsapp/status" if path == "/text" else "/text"
    extra: tuple[tuple[bytes, bytes], ...] = ()
    match draw(st.integers(0, 7)):
        case 0:
            signature = Signer("not-the-auth-token").sign(path, pairs)
        case 1:  # replayed from another endpoint
            signature = real.sign(other_path, pairs)
        case 2:  # signed for another host or scheme
            base = draw(st.sampled_from(("http://sprout.example.org", "https://evil.example")))
            signature = real.sign(path, pairs, base_url=base)
        case 3:  # a field changed after signing
            signature = real.sign(path, pairs)
            pairs = _set(pairs, "Body", dict(pairs).get("Body", "") + "!")
        case 4:  # right signature, mangled
            good = real.sign(path, pairs)
            signature = draw(st.sampled_from((good[:-1], good[1:], good + b"=", good.swapcase())))
        case 5:  # right signature, but for the URL with a query the request lacks
            signature = real.sign(path, pairs, query=b"x=1")
        case 6:  # a forged one first: the app must read the first, not pick the one it likes
            signature = draw(forged_signature)
            extra = ((b"x-twilio-signature", real.sign(path, pairs)),)
        case _:
            signature = draw(forged_signature)
    body, content_type = encoded(draw, pairs)
    return Probe("forged", path, body, headers(body, content_type, signature, *extra))


@st.composite
def random_fields(draw: st.DrawFn) -> Probe:
    pairs = draw(random_pairs)
    body, content_type = encoded(draw, pairs)
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("random_fields", path, body, headers(body, content_type, draw(maybe_signature)))


CONTENT_TYPES = (
    None, FORM, FORM + b"; charset=utf-8", FORM + b"; charset=bogus-8", FORM + b"; charset=utf-16",
    FORM + b"; charset=", b"APPLICATION/X-WWW-FORM-URLENCODED", b"application/x-url-encoded",
    b"application/json", b"application/json; charset=latin-1", b"text/plain", b"text/xml",
    b"application/octet-stream", b"multipart/form-data", b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=" + BOUNDARY, b"multipart/form-data; boundary=\xff\xfe",
    b'multipart/form-data; boundary="' + BOUNDARY + b'"', b"multipart/mixed; boundary=x",
    b"", b";;;", b"\x00", b"*/*", b"application/x-www-form-urlencoded\xc3\xa9",
)  # fmt: skip
content_types = st.sampled_from(CONTENT_TYPES) | st.binary(max_size=40)


@st.composite
def raw_bytes(draw: st.DrawFn) -> Probe:
    body = draw(st.binary(max_size=2000))
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("raw_bytes", path, body, headers(body, draw(content_types), draw(maybe_signature)))


def _bad_encoding_body(draw: st.DrawFn, pairs: Pairs) -> bytes:
    """A form body whose bytes or escapes are not UTF-8."""
    body = urlencode(pairs).encode()
    match draw(st.integers(0, 4)):
        case 0:  # raw bytes that are never UTF-8
            return body + b"&Body=" + draw(st.binary(max_size=30)) + b"\xff"
        case 1:  # latin-1 where UTF-8 is expected
            text = draw(st.text(st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1))
            return body + b"&Body=" + text.encode("latin-1")
        case 2:  # escapes of invalid UTF-8: lone continuations, overlongs, surrogates, 0xFF
            escapes = draw(
                st.lists(st.sampled_from(("%ff", "%c0%af", "%ed%a0%80", "%80", "%e2%82", "%fe")))
            )
            return body + b"&Body=" + "".join(escapes).encode()
        case 3:  # broken escapes
            broken = draw(st.sampled_from(("%", "%%", "%g0", "%1", "%zz", "%%%41", "%u00e9")))
            return body + b"&" + broken.encode() + b"=" + broken.encode()
        case _:  # UTF-16 with a byte order mark
            return "\ufeff".encode("utf-16-le") + urlencode(pairs).encode("utf-16-le")


@st.composite
def bad_encoding(draw: st.DrawFn) -> Probe:
    body = _bad_encoding_body(draw, draw(twilio_form()))
    path = draw(st.sampled_from(INBOUND_PATHS))
    return Probe("bad_encoding", path, body, headers(body, FORM, draw(maybe_signature)))


@st.composite
def random_multipart(draw: st.DrawFn) -> bytes:
    """Multipart bodies with random parts: odd names, files, part headers, missing ends."""
    part = st.tuples(
        st.binary(max_size=30) | names.map(str.encode),
        st.none() | st.binary(max_size=20),  # a filename turns the part into a file
        st.binary(max_size=200),
        st.lists(st.binary(max_size=30), max_size=2),  # extra part header lines
    )
    parts = draw(st.lists(part, max_size=8))
    chunks = [draw(st.sampled_from((b"", b"preamble\r\n", b"\r\n")))]
    for name, filename, data, extra in parts:
        disposition = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        chunks.append(b"--" + BOUNDARY + b"\r\n" + disposition + b"\r\n")
        chunks += [line + b"\r\n" for line in extra]
        chunks.append(b"\r\n" + data + b"\r\n")
    if draw(st.booleans()):  # else the body just stops
        chunks.append(b"--" + BOUNDARY + b"--\r\n")
    return b"".join(chunks)


# 1,001 parts in under 64 KiB: more than the form parser allows (413), with a short boundary.
MANY_PARTS = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n' * 1001 + b"--x--\r\n"
MULTIPART_TYPES = (
    b"multipart/form-data; boundary=" + BOUNDARY, b"multipart/form-data; boundary=other",
    b"multipart/form-data", b"multipart/form-data; boundary=\"" + BOUNDARY + b'"',
)  # fmt: skip


@st.composite
def wrong_content_type(draw: st.DrawFn) -> Probe:
    pairs = draw(twilio_form() | random_pairs)
    match draw(st.integers(0, 5)):
        case 0:
            body, content_type = urlencode(pairs).encode(), draw(content_types)
        case 1:
            body, content_type = multipart(pairs), draw(content_types)
        case 2:
            body, content_type = json.dumps(dict(pairs)).encode(), draw(content_types)
        case 3:
            body, content_type = draw(random_multipart()), draw(st.sampled_from(MULTIPART_TYPES))
        case 4:
            body, content_type = MANY_PARTS, b"multipart/form-data; boundary=x"
        case _:
            body, content_type = str(pairs).encode(), draw(content_types)
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("content_type", path, body, headers(body, content_type, draw(maybe_signature)))


# The request target h11 accepts is printable ASCII only (it answers 400 to anything else), so
# other bytes arrive percent-escaped.
PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))
query_strings = st.one_of(
    st.text(PRINTABLE, min_size=1, max_size=200),
    st.binary(min_size=1, max_size=60).map(lambda raw: "".join(f"%{byte:02X}" for byte in raw)),
).map(str.encode)


@st.composite
def odd_query(draw: st.DrawFn) -> Probe:
    pairs = draw(twilio_form())
    body = urlencode(pairs).encode()
    query = draw(
        query_strings
        | st.sampled_from((b"bodySHA256=abc", b"?", b"#", b"%", b"a=%ff", b"&&&", b"=" * 100))
    )
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    signature = draw(forged_signature)
    return Probe("odd_query", path, body, headers(body, FORM, signature), query)


header_names = st.text(  # HTTP tokens: h11 refuses any other header name
    "-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=20
).map(str.encode)


@st.composite
def hostile_headers(draw: st.DrawFn) -> Probe:
    """Lying or garbled Content-Length, duplicated and random headers."""
    body = urlencode(draw(twilio_form())).encode()
    length = draw(
        st.sampled_from((b"", b"0", b"-1", b"abc", b"1e3", b" 12", b"99999999999999999999", b"7"))
        | st.binary(max_size=10)
    )
    extra = draw(st.lists(st.tuples(header_names, st.binary(max_size=60))))
    extra.append((b"content-type", draw(content_types) or b""))
    probe_headers = headers(body, FORM, draw(forged_signature), *extra, content_length=length)
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("hostile_headers", path, body, probe_headers)


def _huge_body(draw: st.DrawFn) -> bytes:
    # Built from a small drawn piece: Hypothesis cannot draw 64 KiB of data directly.
    piece = draw(st.binary(min_size=1, max_size=50) | st.just(b"Body=aaaa&"))
    size = draw(st.integers(MAX_BODY + 1, 4 * MAX_BODY))
    return (piece * (size // len(piece) + 1))[:size]


FORM_TYPES = (FORM, b"multipart/form-data; boundary=x")


@st.composite
def huge(draw: st.DrawFn) -> Probe:
    """Too big to read. With a signature to check, the form is read, so: 413."""
    body = _huge_body(draw)
    # A missing Content-Length (chunked upload) or an understated one must not get past the limit.
    length = draw(st.sampled_from((None, b"", b"100")))
    content_type, signature = draw(st.sampled_from(FORM_TYPES)), draw(forged_signature)
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("huge", path, body, headers(body, content_type, signature, content_length=length))


@st.composite
def huge_unread(draw: st.DrawFn) -> Probe:
    """Too big, but never read: without a signature the answer is 403 at once, and a body that
    is not a form is not parsed, so its signature is checked against no fields at all."""
    body = _huge_body(draw)
    content_type: bytes | None
    signature: bytes | None
    if draw(st.booleans()):
        content_type, signature = draw(st.sampled_from(FORM_TYPES)), None
    else:
        content_type = draw(st.sampled_from((None, b"application/json", b"text/plain")))
        signature = draw(forged_signature)
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    return Probe("huge_unread", path, body, headers(body, content_type, signature))


# --- requests with a valid signature over garbage ------------------------------------------


@st.composite
def signed_garbage(draw: st.DrawFn, signer: Signer) -> Probe:
    pairs = draw(random_pairs)
    path = draw(st.sampled_from(INBOUND_PATHS))
    body, content_type = encoded(draw, pairs)
    return Probe(
        "signed_garbage", path, body, headers(body, content_type, signer.sign(path, pairs))
    )


@st.composite
def signed_mutated(draw: st.DrawFn, signer: Signer) -> Probe:
    pairs = draw(mutated_form())
    path = draw(st.sampled_from(INBOUND_PATHS))
    body, content_type = encoded(draw, pairs)
    return Probe(
        "signed_mutated", path, body, headers(body, content_type, signer.sign(path, pairs))
    )


NOT_A_FORM = (
    None, b"application/json", b"text/plain", b"text/xml", b"application/octet-stream",
    b"multipart/form-data", b"application/x-www-form-urlencode", b"", b"*/*",
)  # fmt: skip


@st.composite
def signed_not_a_form(draw: st.DrawFn, signer: Signer) -> Probe:
    """A body the app does not parse as a form, signed as Twilio would: over no fields."""
    body = draw(st.binary(max_size=2000) | random_multipart())
    path = draw(st.sampled_from(INBOUND_PATHS))
    signature = signer.sign(path, [])
    content_type = draw(st.sampled_from(NOT_A_FORM))
    return Probe("signed_not_a_form", path, body, headers(body, content_type, signature))


@st.composite
def signed_bad_encoding(draw: st.DrawFn, signer: Signer) -> Probe:
    body = _bad_encoding_body(draw, draw(twilio_form()))
    try:
        # Twilio signs decoded fields; undecodable bytes leave the app with no fields at all.
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        pairs = []
    path = draw(st.sampled_from(INBOUND_PATHS))
    return Probe("signed_bad_encoding", path, body, headers(body, FORM, signer.sign(path, pairs)))


STATUSES = ("queued", "sent", "delivered", "read", "failed", "undelivered", "accepted")


@st.composite
def signed_status(draw: st.DrawFn, signer: Signer) -> Probe:
    pairs = [
        ("MessageSid", draw(st.sampled_from(("SM" + "a" * 32, "")) | values)),
        ("MessageStatus", draw(st.sampled_from(STATUSES) | values)),
        ("ErrorCode", draw(st.sampled_from(("", "30008", "63016")) | values)),
    ]
    pairs = draw(st.permutations(pairs))[: draw(st.integers(0, 3))]  # some missing
    pairs += draw(st.lists(st.tuples(names, values), max_size=3))
    body, content_type = encoded(draw, pairs)
    path = "/whatsapp/status"
    return Probe("signed_status", path, body, headers(body, content_type, signer.sign(path, pairs)))


# '#' would start a fragment: Twilio never signs such URLs.
signable_query = query_strings.map(lambda raw: raw.replace(b"#", b"") or b"x")


@st.composite
def signed_query(draw: st.DrawFn, signer: Signer) -> Probe:
    pairs = draw(mutated_form())
    query = draw(signable_query | st.sampled_from((b"bodySHA256=abc", b"a=%ff", b"=", b"?")))
    path = draw(st.sampled_from(INBOUND_PATHS))
    body = urlencode(pairs).encode()
    return Probe(
        "signed_query", path, body, headers(body, FORM, signer.sign(path, pairs, query)), query
    )


@st.composite
def signed_huge(draw: st.DrawFn, signer: Signer) -> Probe:
    pairs = _set(draw(twilio_form()), "Body", "a" * draw(st.integers(MAX_BODY, 2 * MAX_BODY)))
    path = draw(st.sampled_from(INBOUND_PATHS))
    body = urlencode(pairs).encode()
    return Probe("signed_huge", path, body, headers(body, FORM, signer.sign(path, pairs)))


# --- without SPROUT_PUBLIC_URL: the signed URL comes from Host and X-Forwarded-* ------------

NASTY_HOSTS = (
    "a:b", "[x", "[::1", "x]", "a:-1", "a:99999999", "a:", ":80", "a,b", "a:1,b:2", "::::",
    "a b", "é.example", "%zz", "a/b", "a?b", "a#b", "user:pw@host", "host:80:80", "[::1]:x",
    "sprout.example.org:443", "SPROUT.EXAMPLE.ORG", "localhost", "127.0.0.1:0", "0x7f.1",
    ".", "a..b", ".:80", "x" * 64 + ".org",
)  # fmt: skip
NASTY_PROTOS = ("https", "http", "", "ftp", "javascript", "https,http", "ht tp", "HTTPS", "é")
GOOD_HOSTS = (
    "sprout.example.org", "sprout.example.org:8443", "127.0.0.1:5000", "[::1]:8080",
    "abc123.ngrok-free.app", "sprout-9f2c.herokuapp.com",
)  # fmt: skip
hosts = st.sampled_from(NASTY_HOSTS) | st.text(max_size=30)
protos = st.sampled_from(NASTY_PROTOS) | st.text(max_size=10)


@st.composite
def forwarded_forged(draw: st.DrawFn) -> Probe:
    """Host and X-Forwarded-* as an attacker likes them, with a signature that cannot be right."""
    pairs = draw(mutated_form())
    body, content_type = encoded(draw, pairs)
    extra = [(b"x-forwarded-host", draw(hosts).encode())] if draw(st.booleans()) else []
    if draw(st.booleans()):
        extra.append((b"x-forwarded-proto", draw(protos).encode()))
    path = draw(st.sampled_from((*INBOUND_PATHS, "/whatsapp/status")))
    probe_headers = headers(
        body, content_type, draw(forged_signature), *extra, host=draw(hosts).encode()
    )
    return Probe("forwarded_forged", path, body, probe_headers)


@st.composite
def forwarded_signed(draw: st.DrawFn, signer: Signer) -> Probe:
    """Signed for the URL the client saw, told by a proxy's headers or by Host alone."""
    pairs = draw(mutated_form())
    body, content_type = encoded(draw, pairs)
    host = draw(st.sampled_from(GOOD_HOSTS))
    path = draw(st.sampled_from(INBOUND_PATHS))
    if draw(st.booleans()):  # behind a proxy: ngrok, Heroku's router
        proto = draw(st.sampled_from(("http", "https")))
        extra = [(b"x-forwarded-host", host.encode()), (b"x-forwarded-proto", proto.encode())]
        signature = signer.sign(path, pairs, base_url=f"{proto}://{host}")
        probe_headers = headers(body, content_type, signature, *extra, host=b"10.0.0.7:5000")
    else:  # reached directly: the test client's scheme is http
        signature = signer.sign(path, pairs, base_url=f"http://{host}")
        probe_headers = headers(body, content_type, signature, host=host.encode())
    return Probe("forwarded_signed", path, body, probe_headers)


# --- the tests ------------------------------------------------------------------------------

# kind: (requests, statuses allowed, statuses that must show up)
UNSIGNED_PLAN: dict[str, tuple[int, set[int], set[int]]] = {
    "unsigned": (800, {403}, {403}),
    "forged": (1500, {403, 413}, {403}),
    "random_fields": (900, {403, 413}, {403}),
    "raw_bytes": (900, {403}, {403}),
    "bad_encoding": (800, {403, 413}, {403}),
    "content_type": (900, {403, 413}, {403, 413}),
    "odd_query": (500, {403, 413}, {403}),
    "hostile_headers": (300, {403, 413}, {403, 413}),
    "huge": (200, {413}, {413}),
    "huge_unread": (100, {403}, {403}),
}
SIGNED_PLAN: dict[str, tuple[int, set[int], set[int]]] = {
    "signed_garbage": (700, {400, 413}, {400}),
    "signed_mutated": (1200, {200, 400, 413}, {200, 400}),
    "signed_not_a_form": (400, {400}, {400}),
    "signed_bad_encoding": (400, {200, 400, 413}, {200, 400}),
    "signed_status": (500, {204, 400, 413}, {204, 400}),
    "signed_query": (300, {200, 400, 413}, {200, 400}),
    "signed_huge": (50, {413}, {413}),
}


def unsigned_strategies(signer: Signer) -> dict[str, st.SearchStrategy[Probe]]:
    return {
        "unsigned": unsigned_form(),
        "forged": forged_signature_form(signer),
        "random_fields": random_fields(),
        "raw_bytes": raw_bytes(),
        "bad_encoding": bad_encoding(),
        "content_type": wrong_content_type(),
        "odd_query": odd_query(),
        "hostile_headers": hostile_headers(),
        "huge": huge(),
        "huge_unread": huge_unread(),
    }


def signed_strategies(signer: Signer) -> dict[str, st.SearchStrategy[Probe]]:
    return {
        "signed_garbage": signed_garbage(signer),
        "signed_mutated": signed_mutated(signer),
        "signed_not_a_form": signed_not_a_form(signer),
        "signed_bad_encoding": signed_bad_encoding(signer),
        "signed_status": signed_status(signer),
        "signed_query": signed_query(signer),
        "signed_huge": signed_huge(signer),
    }


def check_statuses(fuzzer: Fuzzer, plan: dict[str, tuple[int, set[int], set[int]]]) -> None:
    for kind, (_, allowed, required) in plan.items():
        seen = set(fuzzer.statuses[kind])
        assert seen <= allowed, f"{kind}: {dict(fuzzer.statuses[kind])}"
        assert required <= seen, f"{kind}: {dict(fuzzer.statuses[kind])}"


def well_formed_pairs() -> Pairs:
    return [
        ("MessageSid", "SM" + "f" * 32), ("From", "whatsapp:+447700900999"),
        ("To", BOT_NUMBER), ("Body", "Hi"), ("NumMedia", "0"),
    ]  # fmt: skip


def well_formed(signer: Signer, path: str = "/whatsapp") -> Probe:
    pairs = well_formed_pairs()
    body = urlencode(pairs).encode()
    return Probe("after", path, body, headers(body, FORM, signer.sign(path, pairs)))


def test_the_webhook_survives_10000_hostile_requests(
    fake_openai: FakeOpenAI, fake_twilio: FakeTwilio, tmp_path: Path, clean_env: None
) -> None:
    """No 5xx, no crash, the meaningful status for each kind of request, and no model call
    without a valid signature."""
    started = time.monotonic()
    signer = Signer(fake_twilio.auth_token)
    with serving(fuzz_settings(fake_openai, fake_twilio, tmp_path)) as fuzzer:
        runtime = fuzzer.runtime
        for kind, strategy in unsigned_strategies(signer).items():
            fuzzer.fuzz(strategy, UNSIGNED_PLAN[kind][0])
        fuzzer.settle()
        # Nothing without a valid signature may be recorded, dispatched, or reach the outside.
        assert runtime.calls == 0
        assert fake_openai.requests == []
        assert fake_twilio.requests == []
        unsigned = fuzzer.sent

        for kind, strategy in signed_strategies(signer).items():
            fuzzer.fuzz(strategy, SIGNED_PLAN[kind][0])
        fuzzer.settle()
        # Signed, well-formed messages may be answered (so the pipeline was live all along),
        # but never more than once each.
        model_calls = len(fake_openai.requests)
        assert 0 < model_calls <= len(runtime.fresh)
        for incoming in runtime.fresh:  # validation held: only Twilio-shaped messages got in
            assert SID.fullmatch(incoming.message_id), incoming
            assert SENDER.fullmatch(incoming.user_id), incoming
            assert len(incoming.bot_address) <= 64 and len(incoming.text) <= 20_000, incoming

        # Still healthy, and still answering.
        health = fuzzer.runner.run(fuzzer.client.get("/healthz"))
        assert health.status_code == 200
        fresh_before = len(runtime.fresh)
        assert fuzzer.send(well_formed(signer)) == 200
        assert len(runtime.fresh) == fresh_before + 1
        fuzzer.settle()
        assert fake_twilio.messages_to("whatsapp:+447700900999")
    elapsed = time.monotonic() - started

    total = fuzzer.sent
    print(
        f"\n{total} requests ({unsigned} without a valid signature) in {elapsed:.1f} s; "
        f"{len(runtime.fresh)} accepted as new, {model_calls} model calls"
    )
    for kind, counts in fuzzer.statuses.items():
        print(f"  {kind:20} {dict(sorted(counts.items()))}")
    assert total >= 10_000
    check_statuses(fuzzer, UNSIGNED_PLAN)
    check_statuses(fuzzer, SIGNED_PLAN)


FORWARDED_PLAN: dict[str, tuple[int, set[int], set[int]]] = {
    "forwarded_forged": (1000, {400, 403, 413}, {403}),
    "forwarded_signed": (600, {200, 400, 413}, {200, 400}),
}


def test_forged_forwarded_headers_without_a_public_url(
    fake_openai: FakeOpenAI, fake_twilio: FakeTwilio, tmp_path: Path, clean_env: None
) -> None:
    """Without SPROUT_PUBLIC_URL the webhook trusts Host and X-Forwarded-* to rebuild the URL
    Twilio signed; whatever they say must end in 403, never in a crash."""
    signer = Signer(fake_twilio.auth_token)
    settings = fuzz_settings(fake_openai, fake_twilio, tmp_path, public_url=None)
    with serving(settings) as fuzzer:
        fuzzer.fuzz(forwarded_forged(), FORWARDED_PLAN["forwarded_forged"][0])
        fuzzer.settle()
        assert fuzzer.runtime.calls == 0
        assert fake_openai.requests == []
        fuzzer.fuzz(forwarded_signed(signer), FORWARDED_PLAN["forwarded_signed"][0])
    check_statuses(fuzzer, FORWARDED_PLAN)


SIGNED_ON_POSTGRESQL: dict[str, tuple[int, set[int], set[int]]] = {
    "signed_mutated": (500, {200, 400, 413}, {200, 400}),
    "signed_garbage": (200, {400, 413}, {400}),
    "signed_bad_encoding": (200, {200, 400, 413}, {200, 400}),
    "signed_status": (200, {204, 400, 413}, {204, 400}),
}


def test_signed_garbage_on_postgresql(
    postgres_url: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
    clean_env: None,
) -> None:
    """Signed requests reach the database, and PostgreSQL refuses what SQLite stores (NUL)."""
    signer = Signer(fake_twilio.auth_token)
    strategies = signed_strategies(signer)
    settings = fuzz_settings(fake_openai, fake_twilio, tmp_path, database_url=postgres_url)
    with serving(settings) as fuzzer:
        for kind, (requests, _, _) in SIGNED_ON_POSTGRESQL.items():
            fuzzer.fuzz(strategies[kind], requests)
        fuzzer.settle()
        assert len(fake_openai.requests) <= len(fuzzer.runtime.fresh)
    check_statuses(fuzzer, SIGNED_ON_POSTGRESQL)


# --- what the fuzzing found, kept as explicit cases ----------------------------------------


def test_a_host_the_url_parser_rejects_is_403_not_500(
    fake_openai: FakeOpenAI, fake_twilio: FakeTwilio, tmp_path: Path, clean_env: None
) -> None:
    """Was 500: without SPROUT_PUBLIC_URL the signed URL is rebuilt from Host or
    X-Forwarded-Host, and Twilio's validator raised ValueError on a port that is no number
    or an unclosed IPv6 bracket."""
    body = urlencode(well_formed_pairs()).encode()
    settings = fuzz_settings(fake_openai, fake_twilio, tmp_path, public_url=None)
    with serving(settings) as fuzzer:
        for host in (b"a:b", b"[x", b"sprout.example.org:-1", b"[::1]:x"):
            forwarded = headers(body, FORM, b"Zm9yZ2Vk", (b"x-forwarded-host", host))
            assert fuzzer.send(Probe("regression", "/whatsapp", body, forwarded)) == 403
            direct = headers(body, FORM, b"Zm9yZ2Vk", host=host)
            assert fuzzer.send(Probe("regression", "/text", body, direct)) == 403


@pytest.mark.parametrize("public_url", [None, "https://sprout.example.org"])
def test_a_host_werkzeug_cannot_route_by_is_400_not_500(
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
    clean_env: None,
    public_url: str | None,
) -> None:
    """Was 500 (found by the fuzzer): Quart binds its URL map to the Host before any route or
    error handler runs, and an empty or over-long label there raised."""
    body = urlencode(well_formed_pairs()).encode()
    settings = fuzz_settings(fake_openai, fake_twilio, tmp_path, public_url=public_url)
    with serving(settings) as fuzzer:
        for host in (b".", b"a..b", b".:80", b"x" * 64 + b".org"):
            for path in ("/whatsapp", "/text", "/healthz"):
                probe = Probe("regression", path, body, headers(body, FORM, b"Zm9yZ2Vk", host=host))
                assert fuzzer.send(probe) == 400
        assert fuzzer.runtime.calls == 0


NUL_FIELDS = (
    ("/whatsapp", "Body", "hi\x00there"),
    ("/whatsapp", "To", "whatsapp:+14155238886\x00"),
    ("/whatsapp", "MediaUrl0", "https://api.twilio.com/Media/ME1\x00"),
    ("/whatsapp/status", "MessageSid", "SM\x00"),
)


def test_nul_in_a_signed_field_is_400_not_500_on_postgresql(
    postgres_url: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
    clean_env: None,
) -> None:
    """Was 500: PostgreSQL cannot store NUL, nor even compare with it ("invalid byte sequence
    for encoding UTF8: 0x00"). SQLite stores it, so only a run on PostgreSQL shows this."""
    signer = Signer(fake_twilio.auth_token)
    settings = fuzz_settings(fake_openai, fake_twilio, tmp_path, database_url=postgres_url)
    with serving(settings) as fuzzer:
        for path, name, value in NUL_FIELDS:
            pairs = _set([*well_formed_pairs(), ("MessageStatus", "sent")], name, value)
            if name == "MediaUrl0":
                pairs = _set(pairs, "NumMedia", "1")
            body = urlencode(pairs).encode()
            probe = Probe("regression", path, body, headers(body, FORM, signer.sign(path, pairs)))
            assert fuzzer.send(probe) == 400, name
        assert fuzzer.runtime.calls == 0
