"""Encryption of stored credentials (Fernet: AES-128-CBC with HMAC-SHA256).

The key comes from CLARION_SECRET_KEY. When it is not set, the embedded default keeps one in
``var_dir/secret.key`` (created on first use, readable by its owner only); a deployment on
PostgreSQL should set CLARION_SECRET_KEY in its secret store, the same on every node.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from clarion.config import Settings


class CredentialsKeyError(RuntimeError):
    """The stored credentials cannot be read with this key."""


def load_key(settings: Settings) -> bytes:
    if key := settings.secret_key.get_secret_value():
        return key.encode()
    path = settings.var_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return Path(path).read_bytes().strip()


class Box:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode()

    def open(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise CredentialsKeyError(
                "stored provider credentials cannot be decrypted: CLARION_SECRET_KEY (or "
                "var/secret.key) is not the key they were saved with"
            ) from None

    def __repr__(self) -> str:
        return "Box(key=[redacted])"
