"""The fake Twilio REST API as its own process, plus `GET /_bench/messages` for the benchmarks.

    python -m bench.fake_twilio --port N

The benchmark reads what was delivered (recipient and `time.monotonic()` of arrival, which is
the same clock in every process on Linux) without sharing memory with the fake.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from tests.fakes.twilio_server import FakeTwilio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default="AC" + "0123456789abcdef" * 2)
    parser.add_argument("--auth-token", default="fake-auth-token")
    args = parser.parse_args()
    fake = FakeTwilio(args.account_sid, args.auth_token, port=args.port)

    async def messages(_request: web.Request) -> web.Response:
        return web.json_response([[m.to, m.at, len(m.body)] for m in fake.messages])

    async def reset(_request: web.Request) -> web.Response:
        fake.reset()
        return web.Response(status=204)

    fake.server.app.router.add_get("/_bench/messages", messages)
    fake.server.app.router.add_post("/_bench/reset", reset)
    fake.start()
    fake.serve_until_killed(fake.base_url)


if __name__ == "__main__":
    main()
