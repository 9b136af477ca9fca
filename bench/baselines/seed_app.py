"""The seed prototype's shape, as the baseline for figures 2 and 3: Flask, the model called
inside the request (blocking), the whole answer sent once it is complete, then the response.

    OPENAI_BASE_URL=... TWILIO_API_BASE_URL=... \
        gunicorn -w 2 --threads 4 bench.baselines.seed_app:app
"""

from __future__ import annotations

import os

import httpx
import openai
from flask import Flask, Response, request

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_LEN = 1600

app = Flask("seed")
_model = openai.OpenAI(timeout=120.0, max_retries=0)  # reads OPENAI_BASE_URL / OPENAI_API_KEY
_twilio = httpx.Client(timeout=30.0)


def _send(to: str, body: str) -> None:
    sid = os.environ["TWILIO_ACCOUNT_SID"]
    _twilio.post(
        f"{os.environ['TWILIO_API_BASE_URL']}/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": to, "From": os.environ["TWILIO_WHATSAPP_FROM"], "Body": body},
        auth=(sid, os.environ["TWILIO_AUTH_TOKEN"]),
    ).raise_for_status()


@app.post("/whatsapp")
def whatsapp() -> Response:
    text = request.form.get("Body", "")
    completion = _model.chat.completions.create(
        model="gpt-fake",
        messages=[
            {"role": "system", "content": "You help caregivers of young children."},
            {"role": "user", "content": text},
        ],
    )
    answer = completion.choices[0].message.content or ""
    sender = request.form.get("From", "")
    for start in range(0, len(answer), MAX_LEN):
        _send(sender, answer[start : start + MAX_LEN])
    return Response(EMPTY_TWIML, status=200, content_type="text/xml")


@app.get("/healthz")
def healthz() -> str:
    return "ok"
