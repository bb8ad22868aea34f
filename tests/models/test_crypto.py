"""Token encryption at rest with rotatable Fernet keys."""

from __future__ import annotations

import pytest

from models.crypto import TokenCipher, TokenDecryptError, TokenKeyError


def test_round_trip_and_no_plaintext() -> None:
    """A token encrypts to bytes that do not contain it and decrypts back."""
    cipher = TokenCipher(TokenCipher.generate_key())
    blob = cipher.encrypt("EAAGtoken123")
    assert b"EAAGtoken123" not in blob
    assert cipher.decrypt(blob) == "EAAGtoken123"


def test_old_tokens_stay_readable_after_rotation() -> None:
    """With a new key first and the old one kept, old ciphertexts still decrypt and rotate."""
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    blob = TokenCipher(old).encrypt("EAAGold")
    rotated_cipher = TokenCipher(f"{new},{old}")
    assert rotated_cipher.decrypt(blob) == "EAAGold"
    assert TokenCipher(new).decrypt(rotated_cipher.rotate(blob)) == "EAAGold"


def test_unknown_key_cannot_decrypt() -> None:
    """A ciphertext from a removed key is a clear error."""
    blob = TokenCipher(TokenCipher.generate_key()).encrypt("x")
    with pytest.raises(TokenDecryptError):
        TokenCipher(TokenCipher.generate_key()).decrypt(blob)


@pytest.mark.parametrize("keys", ["", " , ", "not-a-fernet-key"])
def test_bad_keys_are_refused(keys: str) -> None:
    """Missing or malformed keys are refused at start."""
    with pytest.raises(TokenKeyError):
        TokenCipher(keys)
