"""shared/sealing.py: a sealed value opens only with its data key, in its own row and
field; a data key unwraps only under its KEK; lookups are keyed."""

from __future__ import annotations

import pytest

from shared import sealing
from shared.settings import Settings


def test_a_sealed_value_opens_only_in_its_row_and_field_and_names_its_key() -> None:
    key = sealing.new_data_key()
    sealed = sealing.seal(key, "k1", "Zéphyrine", "identities|r-1|first_name")
    assert "Zéphyrine" not in sealed and sealing.key_of(sealed) == "k1"
    assert sealing.unseal(key, sealed, "identities|r-1|first_name") == "Zéphyrine"
    # Same value, fresh nonce: equal values do not show as equal.
    assert sealing.seal(key, "k1", "Zéphyrine", "identities|r-1|first_name") != sealed
    with pytest.raises(sealing.SealBroken, match="first_name under key k1"):
        sealing.unseal(key, sealed, "identities|r-2|first_name")  # copied to another row
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(key, sealed, "identities|r-1|last_name")
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(sealing.new_data_key(), sealed, "identities|r-1|first_name")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(key, tampered, "identities|r-1|first_name")


def test_a_data_key_unwraps_only_under_its_kek_and_its_id() -> None:
    kek = sealing.LocalKeyProvider(b"k" * 40)
    raw = sealing.new_data_key()
    wrapped = kek.wrap(raw, "k1")
    assert kek.unwrap(wrapped, "k1") == raw
    with pytest.raises(sealing.SealBroken):
        sealing.LocalKeyProvider(b"o" * 40).unwrap(wrapped, "k1")
    with pytest.raises(sealing.SealBroken):
        kek.unwrap(wrapped, "k2")
    assert kek.kek_id != sealing.LocalKeyProvider(b"o" * 40).kek_id


def test_the_kek_comes_from_its_file_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "kek"
    path.write_text("f" * 40 + "\n")
    from_file = sealing.key_provider(Settings(identity_kek_file=path, identity_kek="s" * 40))
    assert from_file.kek_id == sealing.LocalKeyProvider(b"f" * 40).kek_id


def test_lookups_are_keyed_and_kept_apart_by_purpose() -> None:
    one = sealing.lookup_key(Settings(identity_lookup_key="a" * 40))
    other = sealing.lookup_key(Settings(identity_lookup_key="b" * 40))
    nir = "285057800608441"
    assert sealing.lookup_hash(one, "nir", nir) == sealing.lookup_hash(one, "nir", nir)
    assert sealing.lookup_hash(one, "nir", nir) != sealing.lookup_hash(other, "nir", nir)
    assert sealing.lookup_hash(one, "nir", nir) != sealing.lookup_hash(one, "fingerprint", nir)
