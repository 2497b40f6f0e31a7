"""argon2 off the event loop: one hash costs ~0.25 s of CPU, which must not stall other requests."""

from __future__ import annotations

import asyncio

from server.domain import passwords


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(passwords.hash_password, password)


async def verify_password(stored_hash: str, password: str) -> bool:
    return await asyncio.to_thread(passwords.verify_password, stored_hash, password)
