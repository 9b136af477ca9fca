"""Telegram: python-telegram-bot, polling or the webhook through the Quart app."""

import os

# Opt in to python-telegram-bot's coming behaviour (time periods as `timedelta`, as in its next
# major version); without it v22 warns each time a `RetryAfter` is made.
os.environ.setdefault("PTB_TIMEDELTA", "1")
