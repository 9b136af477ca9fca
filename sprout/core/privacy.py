""" "Forget me": the one owner of erasing a user.

Everything about the user goes when they ask, except the message that asked, so its
confirmation can still be delivered and recorded; once that is sent, the message and its
answer go too. A job cut off in between finds its answer complete and erases on resume.
"""

from __future__ import annotations

from sprout.core.store import Store

FORGOTTEN = "forgotten"  # the answer's kind: the user's remaining rows go once it is sent


class Forgetting:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def asked(self, user_id: str, inbound_id: int | None) -> None:
        """The user asked to be forgotten: erase all but the asking message."""
        await self._store.erase_user(user_id, keep_inbound_id=inbound_id)

    async def after_answer(self, user_id: str, kind: str | None) -> bool:
        """Once an answer is sent: erase the rest if it confirmed "forget me"; whether it did."""
        if kind != FORGOTTEN:
            return False
        await self._store.erase_user(user_id)
        return True
