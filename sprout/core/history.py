"""The recent conversation, cut to a token budget for the prompt.

The budget is estimated, not counted with a tokenizer: tokenizers either download their
tables at run time (tiktoken), which fails offline, or tie Sprout to one model family. About
four bytes of UTF-8 per token is close for English and errs on the safe side elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sprout.core.prompts import ChatMessage
from sprout.core.store import Turn

PER_MESSAGE_OVERHEAD = 4  # role and separators, as chat formats add them


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4) + PER_MESSAGE_OVERHEAD


def recent_history(turns: Sequence[Turn], budget: int) -> list[ChatMessage]:
    """The newest turns that fit in `budget` tokens, oldest first; older turns are dropped."""
    kept: list[ChatMessage] = []
    used = 0
    for turn in reversed(turns):
        cost = estimate_tokens(turn.user_text) + estimate_tokens(turn.answer_text)
        if used + cost > budget:
            break
        used += cost
        kept[:0] = [
            {"role": "user", "content": turn.user_text},
            {"role": "assistant", "content": turn.answer_text},
        ]
    return kept
