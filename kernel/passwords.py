"""Password hashing for every realm: bcrypt, run off the event loop."""

from __future__ import annotations

import asyncio

import bcrypt

BCRYPT_ROUNDS = 12
BCRYPT_MAX_BYTES = 72


def _secret(password: str) -> bytes:
    """What bcrypt hashes: the first 72 bytes of the UTF-8 password. bcrypt never read more;
    bcrypt 4 cut the rest silently, bcrypt 5 raises instead (a password of 128 characters,
    which the API allows, can be up to 512 bytes)."""
    return password.encode()[:BCRYPT_MAX_BYTES]


async def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    salt = bcrypt.gensalt(rounds)
    digest = await asyncio.to_thread(bcrypt.hashpw, _secret(password), salt)
    return digest.decode()


async def password_matches(password: str, password_hash: str) -> bool:
    """Whether `password` is the one `password_hash` was made from; False for anything that
    is not a bcrypt hash (a seeded placeholder, a disabled account's marker)."""
    try:
        return await asyncio.to_thread(bcrypt.checkpw, _secret(password), password_hash.encode())
    except ValueError:
        return False
