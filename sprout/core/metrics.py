"""Prometheus metrics: what an operator watches to know users are being answered.

Each process keeps its own counters (a web process counts what it accepts, a worker what it
answers); the queue depth is read from the database, so every process reports the same one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from prometheus_client import Counter, Gauge, Histogram

from sprout.core.llm import ChatModel, ModelError, StreamItem, Tools
from sprout.core.prompts import ChatMessage

# Answers take seconds to a minute; the interesting part is the tail.
_SECONDS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 120, 300)

QUEUE_DEPTH = Gauge(
    "sprout_queue_depth", "Accepted messages whose answer is not completely sent yet"
)
JOBS_RUNNING = Gauge("sprout_jobs_running", "Jobs this process is running now")
JOB_SECONDS = Histogram(
    "sprout_job_seconds",
    "From a message's arrival to the last piece of its answer handed to the channel",
    ["channel"],
    buckets=_SECONDS,
)
MODEL_SECONDS = Histogram(
    "sprout_model_seconds",
    "Model calls: time to the first text, and to the end of the stream",
    ["phase"],
    buckets=_SECONDS,
)
MODEL_FAILURES = Counter(
    "sprout_model_failures_total", "Model calls that failed after the client's own retries"
)
SEND_FAILURES = Counter(
    "sprout_send_failures_total",
    "Messages a channel could not deliver after retries",
    ["channel", "permanent"],
)
VOICE_NOTES = Counter(
    "sprout_voice_notes_total",
    "Voice notes listened to: heard (answered) or failed (the user was asked to try again)",
    ["outcome"],
)
REQUESTS_FLAGGED = Counter(
    "sprout_requests_flagged_total", "Requests moderation flagged (answered with the safe text)"
)
SAFETY_EVENTS = Counter(
    "sprout_safety_events_total",
    "Safeguarding events: the request or answer screen acted (never a message's words)",
    ["category", "stage"],
)
ALERTS = Counter(
    "sprout_safeguarding_alerts_total",
    "Operators' webhook deliveries of severe safety events: delivered, or failed (retried)",
    ["outcome"],
)
FEEDBACK = Counter(
    "sprout_feedback_total",
    "Ratings users gave answers: rating up or down, kind of answer rated (none: no answer yet)",
    ["rating", "kind"],
)
ENQUEUE_FAILURES = Counter(
    "sprout_enqueue_failures_total",
    "Accepted messages that could not be queued at once (a sweep queues them later)",
)
NUDGES = Counter(
    "sprout_nudges_total",
    "Unprompted messages due, by what became of them (sent, dropped_late, quiet_hours, "
    "outside_window)",
    ["kind", "outcome"],
)


class TimedModel:
    """A ChatModel that records its latency; otherwise it is the model it wraps."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.name = model.name

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = (), max_tokens: int | None = None
    ) -> AsyncIterator[StreamItem]:
        started = time.monotonic()
        first = True
        try:
            async for item in self.model.stream(messages, tools, max_tokens):
                if first:
                    MODEL_SECONDS.labels("first_text").observe(time.monotonic() - started)
                    first = False
                yield item
        except ModelError:
            MODEL_FAILURES.inc()
            raise
        MODEL_SECONDS.labels("total").observe(time.monotonic() - started)
