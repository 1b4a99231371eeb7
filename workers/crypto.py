"""Encryption of secrets at rest with Fernet keys from ``SIGNAL_SECRET_KEY``.

``SIGNAL_SECRET_KEY`` holds one or more comma-separated Fernet keys, newest first. The first key encrypts; every
key decrypts, so a key is rotated by putting the new key first and keeping the old one until every stored secret
has been re-encrypted.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from workers.errors import Unavailable
from workers.settings import get_settings


class SecretKeyMissing(Unavailable):
    def __init__(self) -> None:
        super().__init__(
            "SIGNAL_SECRET_KEY is not set: set it to a Fernet key to store integration secrets "
            "(`signal-s3 keygen` prints a new key)"
        )


class SecretKeyInvalid(Unavailable):
    def __init__(self, position: int) -> None:
        super().__init__(
            f"SIGNAL_SECRET_KEY entry {position} is not a valid Fernet key (32 url-safe base64-encoded bytes); "
            "`signal-s3 keygen` prints a new key"
        )


class SecretKeyMismatch(Unavailable):
    def __init__(self) -> None:
        super().__init__(
            "cannot decrypt stored secrets with SIGNAL_SECRET_KEY; was the key rotated without keeping the old one?"
        )


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyInvalid(position) from None
    return MultiFernet(fernets)


def _fernet() -> MultiFernet:
    keys = tuple(get_settings().secret_keys)
    if not keys:
        raise SecretKeyMissing()
    return _fernet_for(keys)


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    fernet = _fernet()
    try:
        return fernet.decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError):
        raise SecretKeyMismatch() from None
