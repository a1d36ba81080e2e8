"""SecAgg+: the sum equals plain aggregation within the fixed-point step under dropouts, the
server's view of one masked input is uniform, Shamir's threshold, clear aborts."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

from tinylarge.secure.errors import BadTag
from tinylarge.secure.secagg import FixedPoint, SecAggAborted, SecAggPlus, run_round
from tinylarge.secure.secagg.costs import client_costs
from tinylarge.secure.secagg.graph import neighbourhoods
from tinylarge.secure.secagg.masks import open_shares, seal_shares, sealed_share_bytes
from tinylarge.secure.secagg.protocol import threshold_for
from tinylarge.secure.secagg.shamir import PRIME, SHARE_VALUE_BYTES, combine, split


def seeded_entropy(seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return lambda n: rng.bytes(n)


@pytest.mark.parametrize(
    ("n", "num_shares", "fraction", "dropout"),
    [(20, 21, 0.5, 0.0), (20, 21, 0.5, 0.1), (20, 21, 0.5, 0.3), (40, 11, 0.3, 0.3)],
)
def test_sum_equals_plain_within_the_fixed_point_step(
    n: int, num_shares: int, fraction: float, dropout: float
) -> None:
    rng = np.random.default_rng(n)
    vectors = rng.uniform(-2.0, 2.0, (n, 300))
    protocol = SecAggPlus(
        num_shares=num_shares,
        threshold_fraction=fraction,
        dropout_fraction=dropout,
        entropy=seeded_entropy(1),
    )
    result = protocol.secure_sum(vectors, np.random.default_rng(7))
    inc = result.included
    assert int((~inc).sum()) == round(dropout * n)  # that many really dropped out
    exact = vectors[inc].sum(axis=0)
    step = FixedPoint().step
    bound = inc.sum() * step / 2  # each included client's value rounds by at most step / 2
    assert result.error_bound == pytest.approx(bound)
    assert np.abs(result.total - exact).max() <= bound * (1 + 1e-9)
    # the dropped clients' vectors are not in the sum (they differ by far more than the bound)
    if not inc.all():
        assert np.abs(result.total - vectors.sum(axis=0)).max() > 100 * bound


def test_communication_graph_is_a_symmetric_regular_ring() -> None:
    hoods = neighbourhoods(30, 7, np.random.default_rng(0))
    assert hoods.shape == (30, 7)
    assert (hoods[:, 0] == np.arange(30)).all()
    adjacency = np.zeros((30, 30), dtype=bool)
    adjacency[np.repeat(np.arange(30), 7), hoods.ravel()] = True
    assert (adjacency == adjacency.T).all() and (adjacency.sum(axis=1) == 7).all()
    assert (neighbourhoods(5, 7, np.random.default_rng(0)).shape) == (5, 5)  # complete graph
    with pytest.raises(ValueError, match="num_shares must be odd"):
        neighbourhoods(30, 8, np.random.default_rng(0))


def test_a_masked_input_is_indistinguishable_from_uniform() -> None:
    """Chi-square (256 bins of the top byte) and Kolmogorov-Smirnov over the elements of one
    client's masked vector; the same tests reject the quantized, unmasked vector."""
    n, dim = 5, 20_000
    vectors = np.random.default_rng(3).normal(0.0, 0.5, (n, dim))
    hoods = neighbourhoods(n, 5, np.random.default_rng(0))
    encoding = FixedPoint()
    transcript = run_round(vectors, hoods, np.ones(n, dtype=bool), 3, encoding, seeded_entropy(2))
    modulus = float(encoding.modulus)

    def p_values(elements: np.ndarray) -> tuple[float, float]:
        counts = np.bincount((elements >> np.uint64(24)).astype(np.int64), minlength=256)
        chi2 = stats.chisquare(counts).pvalue
        ks = stats.kstest(elements.astype(np.float64) / modulus, "uniform").pvalue
        return float(chi2), float(ks)

    for row in transcript.masked:
        chi2, ks = p_values(row)
        assert chi2 > 1e-3 and ks > 1e-3
    chi2, ks = p_values(encoding.encode(vectors[0]))  # negative control
    assert chi2 < 1e-12 and ks < 1e-12


def test_too_many_dropouts_abort_with_a_clear_error() -> None:
    vectors = np.zeros((10, 4))
    protocol = SecAggPlus(num_shares=11, threshold_fraction=0.8, dropout_fraction=0.3)
    with pytest.raises(SecAggAborted, match=r"3 of 10 clients dropped out.*threshold of 8"):
        protocol.secure_sum(vectors, np.random.default_rng(0))
    assert issubclass(SecAggAborted, ValueError)  # a CannotFitError: the sim skips the scheme


def test_shamir_round_trip_and_threshold() -> None:
    entropy = seeded_entropy(4)
    secret = int.from_bytes(entropy(32), "little")
    shares = split(secret, 11, 6, entropy=entropy)
    rng = np.random.default_rng(0)
    for _ in range(5):
        pick = rng.choice(11, size=6, replace=False)
        assert combine([shares[i] for i in pick]) == secret
    assert combine(shares) == secret  # more than the threshold works too
    assert combine(shares[:5]) != secret  # t - 1 shares give another value
    assert all(0 <= y < PRIME for _, y in shares)
    assert SHARE_VALUE_BYTES == 33
    with pytest.raises(ValueError, match="distinct x"):
        combine([shares[0], shares[0]])
    with pytest.raises(ValueError, match="the secret must lie in"):
        split(PRIME, 3, 2)


def test_shamir_threshold_minus_one_shares_reveal_nothing() -> None:
    """Over a small field, the distribution of t - 1 shares is the same for every secret
    (exhaustive over the coefficients)."""
    prime, t = 13, 3

    def distribution(secret: int) -> set[tuple[int, int]]:
        seen = set()
        for a in range(prime):
            for b in range(prime):
                coefficients = iter([a.to_bytes(1, "little"), b.to_bytes(1, "little")])
                entropy = functools.partial(lambda it, _: next(it), coefficients)
                shares = split(secret, 5, t, prime=prime, entropy=entropy)
                seen.add((shares[1][1], shares[3][1]))  # the shares at x = 2 and x = 4
        return seen

    assert len(distribution(0)) == prime**2  # every pair of values, once each
    assert distribution(0) == distribution(7)


def test_prime_is_the_smallest_above_2_256() -> None:
    sympy = pytest.importorskip("sympy")
    assert sympy.isprime(PRIME)
    assert not any(sympy.isprime(2**256 + k) for k in range(1, 297))


def test_threshold_rounding() -> None:
    assert threshold_for(11, 0.5) == 6
    assert threshold_for(21, 0.5) == 11
    assert threshold_for(5, 0.1) == 2
    with pytest.raises(ValueError, match=r"threshold_fraction must lie in \(0, 1\]"):
        threshold_for(5, 0.0)


def test_sealed_shares_authenticate_both_ends() -> None:
    key = bytes(range(32))
    values = (b"a" * SHARE_VALUE_BYTES, b"b" * SHARE_VALUE_BYTES)
    sealed = seal_shares(key, 3, 9, 2, values)
    assert len(sealed) == sealed_share_bytes(SHARE_VALUE_BYTES)
    assert open_shares(key, 3, 9, SHARE_VALUE_BYTES, sealed) == (2, *values)
    with pytest.raises(BadTag):
        open_shares(key, 4, 9, SHARE_VALUE_BYTES, sealed)  # claimed sender changed
    with pytest.raises(BadTag):
        open_shares(key, 3, 9, SHARE_VALUE_BYTES, sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_fixed_point_encoding() -> None:
    fp = FixedPoint(clip_range=1.0, levels=2**8 + 1, modulus_bits=16)
    assert fp.step == pytest.approx(2 / 256)
    assert fp.max_clients == (2**16 - 1) // 256
    q = fp.encode([-5.0, -1.0, 0.0, 0.3, 1.0, 5.0])
    assert q.tolist() == [0, 0, 128, round(1.3 / fp.step), 256, 256]
    assert fp.decode_sum(q[2:3], 1)[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="NaN"):
        fp.encode([np.nan])
    with pytest.raises(ValueError, match="count must be an integer in"):
        fp.decode_sum(q, fp.max_clients + 1)
    with pytest.raises(ValueError, match="levels must be"):
        FixedPoint(levels=2**33)


def test_client_costs_count_every_message() -> None:
    dim, size = 760, 21
    k = size - 1
    sealed = 8 + 8 + 4 + 2 * 33 + 16
    alive = client_costs(dim, size, FixedPoint())
    assert alive.bytes_up == 64 + k * (8 + sealed) + 4 * dim + size * (8 + 4 + 33)
    assert alive.bytes_down == 64 + k * (8 + 64) + k * (8 + sealed) + size * 8
    gone = client_costs(dim, size, FixedPoint(), dropped=True)
    assert (gone.bytes_up, gone.bytes_down) == (64 + k * (8 + sealed), 64 + k * (8 + 64))
    assert (gone.messages_up, alive.messages_up) == (2, 4)
    # dominated by 2 key generations + 2 agreements per neighbour of ~2.5 M cycles each
    assert 2.53e6 * (2 + 2 * k) < alive.cycles < 1.3 * 2.53e6 * (2 + 2 * k)
    assert gone.cycles < alive.cycles
