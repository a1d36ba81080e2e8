"""Shamir secret sharing over a prime field (Shamir, "How to Share a Secret", CACM 1979).

A secret ``s`` in ``[0, p)`` becomes the constant term of a random polynomial ``f`` of degree
``threshold - 1``; share ``x`` (``1..n``) is ``(x, f(x))``. Any ``threshold`` shares give
``s = f(0)`` by Lagrange interpolation; fewer are consistent with every secret (each
``threshold - 1`` shares are uniformly distributed whatever ``s`` is).

The default field is the integers modulo ``PRIME = 2**256 + 297``, the smallest prime above
``2**256``, so any 32-byte secret (an X25519 private key, a 32-byte mask seed) is one field
element; a share's value takes 33 bytes. The coefficients come from ``entropy`` (default
`secrets.token_bytes`), by rejection sampling so that they are exactly uniform.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from tinylarge.validation import check_int

#: The smallest prime above 2**256 (checked in the tests with an independent primality test).
PRIME = 2**256 + 297
#: Bytes of one share value modulo `PRIME`.
SHARE_VALUE_BYTES = (PRIME.bit_length() + 7) // 8

Entropy = Callable[[int], bytes]
Share = tuple[int, int]


def random_below(prime: int, entropy: Entropy = secrets.token_bytes) -> int:
    """A uniform integer in ``[0, prime)`` drawn from ``entropy`` (rejection sampling)."""
    bits = prime.bit_length()
    nbytes = (bits + 7) // 8
    while True:
        value = int.from_bytes(entropy(nbytes), "little") & ((1 << bits) - 1)
        if value < prime:
            return value


def split(
    secret: int,
    n_shares: int,
    threshold: int,
    *,
    prime: int = PRIME,
    entropy: Entropy = secrets.token_bytes,
) -> list[Share]:
    """``n_shares`` shares ``(x, f(x))``, ``x = 1..n_shares``, of ``secret``; any ``threshold``
    of them rebuild it."""
    check_int("n_shares", n_shares, 1, prime - 1)
    check_int("threshold", threshold, 1, n_shares)
    if not 0 <= secret < prime:
        raise ValueError(
            f"the secret must lie in [0, {prime}), got a {secret.bit_length()}-bit value"
        )
    coefficients = [secret] + [random_below(prime, entropy) for _ in range(threshold - 1)]
    shares = []
    for x in range(1, n_shares + 1):
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % prime
        shares.append((x, y))
    return shares


def combine(shares: Sequence[Share], *, prime: int = PRIME) -> int:
    """The polynomial's value at 0 through ``shares`` (Lagrange interpolation).

    With at least the threshold's number of shares this is the secret; with fewer it is an
    unrelated field element. ``ValueError`` for no shares or a repeated ``x``.
    """
    xs = [x for x, _ in shares]
    if not shares or len(set(xs)) != len(xs) or any(not 0 < x < prime for x in xs):
        raise ValueError(f"shares need distinct x in [1, {prime}); got x = {xs}")
    secret = 0
    for i, (xi, yi) in enumerate(shares):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % prime
                den = den * (xj - xi) % prime
        secret = (secret + yi * num * pow(den, -1, prime)) % prime
    return secret
