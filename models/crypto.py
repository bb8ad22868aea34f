"""Encryption at rest for business tokens and signup codes (Fernet, rotatable keys).

``COEX_TOKEN_KEYS`` holds comma-separated Fernet keys, newest first. The first key encrypts;
every key decrypts, so a key can be rotated in by putting it first and rotated out (after
``coexist db rotate-keys`` or natural re-encryption) by removing it.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenKeyError(ValueError):
    """The configured token keys are missing or malformed."""


class TokenDecryptError(ValueError):
    """A stored ciphertext could not be decrypted with any configured key."""


class TokenCipher:
    """Encrypts and decrypts short secrets with a list of Fernet keys."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise TokenKeyError("COEX_TOKEN_KEYS is empty: set at least one Fernet key")
        try:
            self._fernets = [Fernet(k.encode()) for k in parts]
        except (ValueError, TypeError) as exc:
            raise TokenKeyError(
                "COEX_TOKEN_KEYS must be url-safe base64 Fernet keys (Fernet.generate_key())"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    def encrypt(self, plaintext: str) -> bytes:
        return self._multi.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._multi.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise TokenDecryptError("no configured key decrypts this value") from exc

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt with the newest key."""
        try:
            return self._multi.rotate(ciphertext)
        except InvalidToken as exc:
            raise TokenDecryptError("no configured key decrypts this value") from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()
