"""NonceIssuer on both stores: issue, consume once, expiry, device binding, races."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tests.unit.attestation.stores import Opener, race
from trustedge.attestation.nonces import Challenge, NonceIssuer
from trustedge.attestation.store._sql import SQLStore
from trustedge.errors import NonceError

NOW = 1_700_000_000


def counting_random() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def test_challenge_then_consume(store: SQLStore) -> None:
    issuer = NonceIssuer(store, ttl=30, random=counting_random())
    ch = issuer.challenge("dev-1", NOW)
    assert ch == Challenge("dev-1", (1).to_bytes(32, "big"), NOW + 30)
    assert issuer.consume(ch.nonce, "dev-1", NOW + 29) == ch
    with pytest.raises(NonceError, match="already used"):
        issuer.consume(ch.nonce, "dev-1", NOW + 29)


def test_default_randomness_is_fresh(store: SQLStore) -> None:
    issuer = NonceIssuer(store)
    a, b = issuer.challenge("dev-1", NOW), issuer.challenge("dev-1", NOW)
    assert len(a.nonce) == 32 and a.nonce != b.nonce


def test_expired_rejected(store: SQLStore) -> None:
    issuer = NonceIssuer(store, ttl=30)
    ch = issuer.challenge("dev-1", NOW)
    with pytest.raises(NonceError, match="expired"):
        issuer.consume(ch.nonce, "dev-1", NOW + 30)


def test_wrong_device_and_unknown(store: SQLStore) -> None:
    issuer = NonceIssuer(store)
    ch = issuer.challenge("dev-1", NOW)
    with pytest.raises(NonceError, match="another device"):
        issuer.consume(ch.nonce, "dev-2", NOW)
    with pytest.raises(NonceError, match="unknown"):
        issuer.consume(bytes(32), "dev-1", NOW)
    issuer.consume(ch.nonce, "dev-1", NOW)


@pytest.mark.parametrize("nonce", [b"", b"\x00" * 15, b"\x00" * 65])
def test_impossible_lengths(store: SQLStore, nonce: bytes) -> None:
    with pytest.raises(NonceError, match="length"):
        NonceIssuer(store).consume(nonce, "dev-1", NOW)


def test_purge(store: SQLStore) -> None:
    issuer = NonceIssuer(store, ttl=10)
    ch = issuer.challenge("dev-1", NOW)
    assert issuer.purge(NOW + 10) == 1
    with pytest.raises(NonceError, match="unknown"):
        issuer.consume(ch.nonce, "dev-1", NOW)


@pytest.mark.parametrize(
    "kwargs", [{"ttl": 0}, {"size": 8}, {"size": 65}], ids=["ttl", "small", "large"]
)
def test_bad_parameters(store: SQLStore, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        NonceIssuer(store, **kwargs)  # type: ignore[arg-type]


def test_short_randomness_refused(store: SQLStore) -> None:
    with pytest.raises(ValueError):
        NonceIssuer(store, random=lambda n: b"\x00").challenge("dev-1", NOW)


def test_parallel_workers_one_winner(open_store: Opener, store: SQLStore) -> None:
    ch = NonceIssuer(store).challenge("dev-1", NOW)
    outcomes = race(open_store, lambda s, i: NonceIssuer(s).consume(ch.nonce, "dev-1", NOW))
    assert outcomes == ["NonceError"] * 7 + ["ok"]
