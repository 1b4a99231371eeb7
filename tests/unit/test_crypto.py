from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from workers import crypto
from workers.settings import get_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def use_keys(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    monkeypatch.setenv("SIGNAL_SECRET_KEY", ",".join(keys))
    get_settings.cache_clear()


def test_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, crypto.generate_key())
    token = crypto.encrypt("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "wJalrXUtnFEMI" not in token
    assert crypto.decrypt(token) == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_round_trip_of_non_ascii_text(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, crypto.generate_key())
    assert crypto.decrypt(crypto.encrypt("clé secrète ✓")) == "clé secrète ✓"


def test_encryption_is_randomised(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, crypto.generate_key())
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_rotation_old_key_still_decrypts_and_new_key_encrypts(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = crypto.generate_key(), crypto.generate_key()
    use_keys(monkeypatch, old)
    old_token = crypto.encrypt("secret-before-rotation")

    use_keys(monkeypatch, new, old)
    assert crypto.decrypt(old_token) == "secret-before-rotation"
    new_token = crypto.encrypt("secret-after-rotation")
    assert Fernet(new.encode()).decrypt(new_token.encode()) == b"secret-after-rotation"

    use_keys(monkeypatch, new)
    assert crypto.decrypt(new_token) == "secret-after-rotation"
    with pytest.raises(crypto.SecretKeyMismatch):
        crypto.decrypt(old_token)


def test_keys_with_spaces_around_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = crypto.generate_key(), crypto.generate_key()
    use_keys(monkeypatch, old)
    token = crypto.encrypt("x")
    monkeypatch.setenv("SIGNAL_SECRET_KEY", f" {new} , {old} ")
    get_settings.cache_clear()
    assert crypto.decrypt(token) == "x"


@pytest.mark.parametrize("value", [None, "", " , "])
def test_missing_key_says_what_to_set(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SIGNAL_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SIGNAL_SECRET_KEY", value)
    get_settings.cache_clear()
    with pytest.raises(crypto.SecretKeyMissing, match="SIGNAL_SECRET_KEY") as caught:
        crypto.encrypt("x")
    assert "signal-s3 keygen" in str(caught.value)
    with pytest.raises(crypto.SecretKeyMissing):
        crypto.decrypt("token")


def test_wrong_key_is_a_clear_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, crypto.generate_key())
    token = crypto.encrypt("x")
    use_keys(monkeypatch, crypto.generate_key())
    with pytest.raises(crypto.SecretKeyMismatch) as caught:
        crypto.decrypt(token)
    assert str(caught.value) == (
        "cannot decrypt stored secrets with SIGNAL_SECRET_KEY; was the key rotated without keeping the old one?"
    )


@pytest.mark.parametrize("token", ["not-a-token", "", "é"])
def test_garbage_token_is_a_mismatch(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    use_keys(monkeypatch, crypto.generate_key())
    with pytest.raises(crypto.SecretKeyMismatch):
        crypto.decrypt(token)


def test_malformed_key_names_its_position_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    use_keys(monkeypatch, crypto.generate_key(), "not-a-fernet-key")
    with pytest.raises(crypto.SecretKeyInvalid) as caught:
        crypto.encrypt("x")
    assert "entry 2" in str(caught.value)
    assert "not-a-fernet-key" not in str(caught.value)


def test_generate_key_is_a_fernet_key() -> None:
    key = crypto.generate_key()
    assert isinstance(key, str)
    Fernet(key.encode())
    assert crypto.generate_key() != key


def test_multifernet_is_cached_per_key_tuple(monkeypatch: pytest.MonkeyPatch) -> None:
    key = crypto.generate_key()
    use_keys(monkeypatch, key)
    crypto.encrypt("x")
    first = crypto._fernet()
    get_settings.cache_clear()
    assert crypto._fernet() is first
    use_keys(monkeypatch, crypto.generate_key(), key)
    assert crypto._fernet() is not first
