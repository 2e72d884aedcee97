"""Identity sealed at rest: envelope encryption and keyed lookups (issue 34).

Each identity field is sealed with AES-256-GCM under a data key (DEK); each data key is
stored wrapped (itself AES-GCM sealed) under a key-encryption key (KEK) that never
touches the database. The KEK comes from a ``KeyProvider``: ``LocalKeyProvider`` reads
it from a setting or a file (``AIGUILLAGE_IDENTITY_KEK`` / ``AIGUILLAGE_IDENTITY_KEK_FILE``);
a KMS or an HSM implements the same two methods (wrap, unwrap) and the KEK never leaves
it. A sealed value names its data key (``<key id>:<base64url(nonce || ciphertext)>``), so
that values under two keys live side by side while ``aiguillage keys rotate`` re-seals
them, online. The associated data binds each value to its row and field: a value
copied to another patient's row or field does not open.

Equality lookups (the NIR) compare a keyed hash (HMAC-SHA256 under a key of its own,
``AIGUILLAGE_IDENTITY_LOOKUP_KEY``), never the plain value, never an unkeyed hash that a
dictionary of NIRs would reverse.

Pure computation, no I/O but the KEK file's one read: the data keys' table is the
owning service's (intake's ``store/keys.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import Settings

_NONCE_BYTES = 12
_KEY_BYTES = 32


class SealBroken(Exception):
    """A sealed value that does not open: another key, another row, or tampered with.
    The message names the key id and the field, never the value."""


class KeyProvider(Protocol):
    """Where the key-encryption key lives. ``kek_id`` names it (rotating the KEK means a
    provider with a new id, and re-wrapping the data keys); ``wrap``/``unwrap`` seal a
    data key under it. A KMS or HSM implements these three and keeps the KEK inside."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, data_key: bytes, key_id: str) -> str: ...

    def unwrap(self, wrapped: str, key_id: str) -> bytes: ...


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=purpose).derive(
        secret
    )


@dataclass(frozen=True)
class LocalKeyProvider:
    """A KEK held by the process (a setting or a file's content): any secret of 32 bytes
    or more, stretched by HKDF into an AES-256 key."""

    secret: bytes

    @property
    def _kek(self) -> bytes:
        return _derive(self.secret, b"aiguillage-identity-kek-v1")

    @property
    def kek_id(self) -> str:
        # A fingerprint of the KEK, never the KEK: which one wrapped a data key.
        return hashlib.sha256(b"kek-id:" + self._kek).hexdigest()[:16]

    def wrap(self, data_key: bytes, key_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        return _b64(nonce + AESGCM(self._kek).encrypt(nonce, data_key, key_id.encode()))

    def unwrap(self, wrapped: str, key_id: str) -> bytes:
        raw = _unb64(wrapped)
        try:
            return AESGCM(self._kek).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], key_id.encode()
            )
        except InvalidTag as exc:
            raise SealBroken(f"data key {key_id} is not wrapped by this KEK") from exc


def key_provider(settings: Settings) -> KeyProvider:
    """The deployment's KEK: the file's content when ``identity_kek_file`` is set, else
    ``identity_kek`` (its development default outside production only: refused in
    production like every secret, ``Settings.secret_problems``)."""
    if settings.identity_kek_file is not None:
        return LocalKeyProvider(settings.identity_kek_file.read_bytes().strip())
    return LocalKeyProvider(settings.identity_kek.encode())


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * _KEY_BYTES)


def new_key_id() -> str:
    return _b64(os.urandom(9))


def seal(data_key: bytes, key_id: str, value: str, context: str) -> str:
    """``value`` sealed under the data key, bound to ``context`` (the row and field)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(nonce, value.encode(), context.encode())
    return f"{key_id}:{_b64(nonce + sealed)}"


def key_of(sealed: str) -> str:
    """The id of the data key a sealed value is under."""
    return sealed.split(":", 1)[0]


def unseal(data_key: bytes, sealed: str, context: str) -> str:
    key_id, _, body = sealed.partition(":")
    raw = _unb64(body)
    try:
        return (
            AESGCM(data_key)
            .decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
            .decode()
        )
    except InvalidTag as exc:
        field = context.rsplit("|", 1)[-1]
        raise SealBroken(f"the {field} under key {key_id} does not open") from exc


def lookup_key(settings: Settings) -> bytes:
    return _derive(settings.identity_lookup_key.encode(), b"aiguillage-identity-lookup-v1")


def lookup_hash(key: bytes, purpose: str, value: str) -> str:
    """The keyed hash an equality lookup compares (HMAC-SHA256, hex): ``purpose`` keeps
    a NIR's hash from ever matching another kind of value's."""
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
