"""One SecAgg+ round, every client and the server in one process.

The four stages (Bell et al., CCS 2020; Bonawitz et al., CCS 2017):

1. *setup*: each client makes two X25519 key pairs (``c`` for sealing shares, ``s`` for
   pairwise masks) and sends the public halves; the server builds the communication graph
   (`tinylarge.secure.secagg.graph`).
2. *share keys*: each client draws a 32-byte self-mask seed ``b``, splits ``b`` and its ``s``
   private key into Shamir shares (threshold ``t``) over its neighbourhood, keeps its own and
   seals one pair for each neighbour, which the server forwards.
3. *masked input*: each client still in the round sends
   ``y = encode(x) + PRG(b) + sum_j +-PRG(s_ij) mod 2**bits`` (``+`` towards larger ids), with
   ``s_ij`` agreed with neighbour ``j`` (`tinylarge.secure.secagg.masks`). Clients may drop out
   before this stage.
4. *unmask*: every neighbour still in the round reveals, for each member of its neighbourhood,
   the share of ``b`` if that member sent its input and the share of its ``s`` key if it did not,
   never both. With ``t`` shares the server removes the survivors' self masks and the pairwise
   masks the survivors added towards the dropped ones; the pairwise masks between survivors
   cancel. The server learns the sum of the survivors' inputs and nothing about one of them.

Before unmasking, the server checks that every neighbourhood kept at least ``t`` members: if
not, `SecAggAborted` says which client cannot be recovered and nothing is returned.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tinylarge.errors import CannotFitError
from tinylarge.secure.secagg.encoding import FixedPoint
from tinylarge.secure.secagg.graph import IntArray
from tinylarge.secure.secagg.masks import (
    MASK_LABEL,
    SELF_MASK_LABEL,
    SHARE_LABEL,
    agreed_key,
    derive,
    open_shares,
    prg,
    public_bytes,
    seal_shares,
)
from tinylarge.secure.secagg.shamir import SHARE_VALUE_BYTES, Entropy, combine, split
from tinylarge.validation import check_int

FloatArray = npt.NDArray[np.float64]
UIntArray = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]


class SecAggAborted(CannotFitError):
    """A SecAgg+ round cannot be finished: too many clients dropped out to remove the masks.

    Nothing of the round is released (the server has no sum), so the caller's model is not
    changed.
    """


def threshold_for(num_shares: int, fraction: float) -> int:
    """Shares needed to rebuild a secret: ``ceil(fraction * num_shares)``, at least 2 and at
    most ``num_shares``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"threshold_fraction must lie in (0, 1], got {fraction}")
    return min(num_shares, max(2, math.ceil(fraction * num_shares - 1e-12)))


@dataclass
class _Client:
    """One client's secrets and the shares it holds for its neighbours."""

    c_key: X25519PrivateKey
    s_key: X25519PrivateKey
    seed: bytes = b""
    held: dict[int, tuple[int, bytes, bytes]] = field(default_factory=dict)

    @classmethod
    def generate(cls, entropy: Entropy) -> _Client:
        return cls(
            X25519PrivateKey.from_private_bytes(entropy(32)),
            X25519PrivateKey.from_private_bytes(entropy(32)),
        )


@dataclass(frozen=True, eq=False)
class RoundTranscript:
    """What the server saw and computed in one round.

    Attributes
    ----------
    neighbourhoods : ndarray of int64, shape (clients, size)
        Row ``i``: client ``i`` then its neighbours.
    threshold : int
        Shares needed to rebuild a secret.
    included : ndarray of bool, shape (clients,)
        Clients whose masked input arrived.
    masked : ndarray of uint64, shape (clients, dim)
        The masked inputs as received (rows of dropped clients are 0).
    total : ndarray of float64, shape (dim,)
        The decoded sum of the included clients' vectors.
    """

    neighbourhoods: IntArray
    threshold: int
    included: BoolArray
    masked: UIntArray
    total: FloatArray


def _value(share: int) -> bytes:
    return share.to_bytes(SHARE_VALUE_BYTES, "little")


def _private_int(key: X25519PrivateKey) -> int:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return int.from_bytes(raw, "little")


def _share_keys(
    clients: list[_Client],
    hoods: IntArray,
    threshold: int,
    receiving: BoolArray,
    entropy: Entropy,
) -> None:
    """Stage 2: every client splits its seed and ``s`` key over its neighbourhood; the sealed
    pairs travel through the server to the neighbours in ``receiving``, which open them."""
    c_pub = [public_bytes(c.c_key) for c in clients]
    size = hoods.shape[1]
    mailbox: dict[tuple[int, int], bytes] = {}
    for i, client in enumerate(clients):
        client.seed = entropy(32)
        b_shares = split(int.from_bytes(client.seed, "little"), size, threshold, entropy=entropy)
        s_shares = split(_private_int(client.s_key), size, threshold, entropy=entropy)
        for m, j in enumerate(hoods[i].tolist()):
            values = (_value(b_shares[m][1]), _value(s_shares[m][1]))
            if j == i:
                client.held[i] = (m + 1, *values)
            else:
                key = agreed_key(client.c_key, c_pub[j], SHARE_LABEL)
                mailbox[(i, j)] = seal_shares(key, i, j, m + 1, values)
    for (i, j), sealed in mailbox.items():
        if receiving[j]:
            key = agreed_key(clients[j].c_key, c_pub[i], SHARE_LABEL)
            x, b_value, s_value = open_shares(key, i, j, SHARE_VALUE_BYTES, sealed)
            clients[j].held[i] = (x, b_value, s_value)


def _masked_input(
    i: int, client: _Client, encoded: UIntArray, hood: IntArray, s_pub: list[bytes], bits: int
) -> UIntArray:
    """Stage 3: client ``i``'s encoded vector plus its self mask and pairwise masks."""
    dim = encoded.size
    y = encoded + prg(derive(client.seed, SELF_MASK_LABEL), dim, bits)
    for j in hood.tolist():
        if j == i:
            continue
        mask = prg(agreed_key(client.s_key, s_pub[j], MASK_LABEL), dim, bits)
        y = y + mask if i < j else y - mask
    return y & np.uint64((1 << bits) - 1)


def check_recoverable(hoods: IntArray, included: BoolArray, threshold: int) -> None:
    """``SecAggAborted`` unless every neighbourhood kept ``threshold`` members that sent
    their input (those are the clients that answer the unmask request)."""
    kept = included[hoods].sum(axis=1)
    short = np.flatnonzero(kept < threshold)
    if short.size:
        worst = int(short[np.argmin(kept[short])])
        dropped = int((~included).sum())
        raise SecAggAborted(
            f"SecAgg+ round aborted: {dropped} of {included.size} clients dropped out, and "
            f"{short.size} neighbourhood(s) kept fewer than the threshold of {threshold} "
            f"members (client {worst}'s kept {int(kept[worst])} of {hoods.shape[1]}), so their "
            "masks cannot be removed; no sum was released and the model is unchanged. Lower "
            "the dropout, or raise num_shares / lower threshold_fraction"
        )


def _unmask(
    clients: list[_Client],
    hoods: IntArray,
    included: BoolArray,
    threshold: int,
    masked: UIntArray,
    bits: int,
) -> UIntArray:
    """Stage 4: gather ``threshold`` shares per client from its surviving neighbours, rebuild
    the survivors' seeds and the dropped clients' ``s`` keys, and remove their masks."""
    s_pub = [public_bytes(c.s_key) for c in clients]
    dim = masked.shape[1]
    total = masked[included].sum(axis=0, dtype=np.uint64)
    for owner in range(len(clients)):
        holders = [h for h in hoods[owner].tolist() if included[h]][:threshold]
        # an honest holder reveals the seed share of a survivor, the key share of a dropout
        part = 1 if included[owner] else 2
        shares = [(clients[h].held[owner][0], clients[h].held[owner][part]) for h in holders]
        secret = combine([(x, int.from_bytes(v, "little")) for x, v in shares])
        if included[owner]:
            seed = secret.to_bytes(32, "little")
            total = total - prg(derive(seed, SELF_MASK_LABEL), dim, bits)
            continue
        key = X25519PrivateKey.from_private_bytes(secret.to_bytes(32, "little"))
        for j in hoods[owner, 1:].tolist():
            if included[j]:  # j added +-mask towards the dropped owner: take it out
                mask = prg(agreed_key(key, s_pub[j], MASK_LABEL), dim, bits)
                total = total - mask if j < owner else total + mask
    out: UIntArray = total & np.uint64((1 << bits) - 1)
    return out


def run_round(
    vectors: npt.ArrayLike,
    hoods: IntArray,
    included: npt.ArrayLike,
    threshold: int,
    encoding: FixedPoint,
    entropy: Entropy = secrets.token_bytes,
) -> RoundTranscript:
    """One round over ``vectors`` (clients, dim) with the communication graph ``hoods``
    (`tinylarge.secure.secagg.graph.neighbourhoods`); the clients not ``included`` drop out
    after sharing their keys. ``SecAggAborted`` when the masks cannot be removed."""
    x = np.asarray(vectors, dtype=np.float64)
    alive = np.asarray(included, dtype=np.bool_)
    if x.ndim != 2 or alive.shape != (x.shape[0],) or hoods.shape[0] != x.shape[0]:
        raise ValueError(
            f"vectors must be (clients, dim) with one included flag and neighbourhood per "
            f"client; got {x.shape}, {alive.shape} and {hoods.shape}"
        )
    check_int("threshold", threshold, 1, hoods.shape[1])
    if x.shape[0] > encoding.max_clients:
        raise ValueError(
            f"{x.shape[0]} clients could overflow the sum modulo 2**{encoding.modulus_bits} "
            f"with {encoding.levels} levels; at most {encoding.max_clients}"
        )
    clients = [_Client.generate(entropy) for _ in range(x.shape[0])]
    _share_keys(clients, hoods, threshold, alive, entropy)
    s_pub = [public_bytes(c.s_key) for c in clients]
    encoded = encoding.encode(x)
    bits = encoding.modulus_bits
    masked = np.zeros(x.shape, dtype=np.uint64)
    for i in np.flatnonzero(alive).tolist():
        masked[i] = _masked_input(i, clients[i], encoded[i], hoods[i], s_pub, bits)
    check_recoverable(hoods, alive, threshold)
    total = _unmask(clients, hoods, alive, threshold, masked, bits)
    return RoundTranscript(
        hoods, threshold, alive, masked, encoding.decode_sum(total, int(alive.sum()))
    )
