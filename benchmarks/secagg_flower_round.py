"""One SecAgg+ round with Flower's own primitives (run by ``bench_fl.py --secagg`` inside a
separate virtual environment that has ``flwr``; prints one JSON line).

It does, for every client and the server in one process, what Flower's ``secaggplus_mod``
(client) and ``SecAggPlusWorkflow`` (server) do in one round, calling the same functions
(``flwr.common.secure_aggregation.*``, ``flwr.supercore.primitives.asymmetric``) but without
Flower's message transport. Bytes per client are the lengths of the objects each message
carries (keys, ciphertexts, ``ndarray_to_bytes`` of the masked vector, shares; ids as 8 bytes,
the 8-entry setup configuration as 64 bytes), not counting the transport's framing.

Usage: python secagg_flower_round.py CLIENTS DIM NUM_SHARES THRESHOLD DROPOUT SEED
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import numpy as np
from flwr.common import ndarray_to_bytes
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    decrypt,
    encrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_utils import (
    pseudo_rand_gen,
    share_keys_plaintext_concat,
    share_keys_plaintext_separate,
)
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)

CLIP, TARGET, MOD, MAX_WEIGHT = 8.0, 2**22, 2**32, 1000.0


def main() -> None:
    n, dim, num_shares, threshold = (int(a) for a in sys.argv[1:5])
    dropout, seed = float(sys.argv[5]), int(sys.argv[6])
    rng = np.random.default_rng(seed)
    random.seed(seed)
    vectors = rng.normal(0.0, 0.05, (n, dim))
    ids = list(range(1, n + 1))
    order = ids[:]
    random.shuffle(order)
    half = num_shares >> 1
    hood = {
        nid: {order[(i + o) % n] for o in range(-half, half + 1)} for i, nid in enumerate(order)
    }
    dead = set(rng.choice(ids, size=round(dropout * n), replace=False).tolist())
    up = dict.fromkeys(ids, 0)
    down = dict.fromkeys(ids, 64)
    started = time.perf_counter()
    keys = {}
    for nid in ids:  # setup
        (sk1, pk1), (sk2, pk2) = generate_key_pairs(), generate_key_pairs()
        keys[nid] = (private_key_to_bytes(sk1), public_key_to_bytes(pk1),
                     private_key_to_bytes(sk2), public_key_to_bytes(pk2))  # fmt: skip
        up[nid] += len(keys[nid][1]) + len(keys[nid][3])
    seeds, own, ss2, mailbox = {}, {}, {}, {}
    for nid in ids:  # share keys
        down[nid] += sum(8 + len(keys[j][1]) + len(keys[j][3]) for j in hood[nid] - {nid})
        seeds[nid] = os.urandom(32)
        b_sh = create_shares(seeds[nid], threshold, num_shares)
        s_sh = create_shares(keys[nid][0], threshold, num_shares)
        for idx, j in enumerate(sorted(hood[nid])):
            if j == nid:
                own[nid] = {nid: (b_sh[idx], s_sh[idx])}
                continue
            key = generate_shared_key(
                bytes_to_private_key(keys[nid][2]), bytes_to_public_key(keys[j][3])
            )
            ss2[(nid, j)] = key
            ct = encrypt(key, share_keys_plaintext_concat(nid, j, b_sh[idx], s_sh[idx]))
            mailbox.setdefault(j, []).append((nid, ct))
            up[nid] += 8 + len(ct)
    masked = {}
    alive = [nid for nid in ids if nid not in dead]
    for nid in alive:  # collect masked vectors
        for src, ct in mailbox.get(nid, []):
            down[nid] += 8 + len(ct)
            _, _, b_share, s_share = share_keys_plaintext_separate(decrypt(ss2[(nid, src)], ct))
            own[nid][src] = (b_share, s_share)
        q_ratio = round(40 / MAX_WEIGHT * TARGET)
        params = quantize([vectors[nid - 1] * (q_ratio / TARGET)], CLIP, TARGET)
        vec = [np.array([q_ratio]), params[0]]
        shapes = [a.shape for a in vec]
        vec = [a + m for a, m in zip(vec, pseudo_rand_gen(seeds[nid], MOD, shapes), strict=True)]
        for j in hood[nid] - {nid}:
            key = generate_shared_key(
                bytes_to_private_key(keys[nid][0]), bytes_to_public_key(keys[j][1])
            )
            masks = pseudo_rand_gen(key, MOD, shapes)
            vec = [a + m if nid > j else a - m for a, m in zip(vec, masks, strict=True)]
        masked[nid] = [a % MOD for a in vec]
        up[nid] += sum(len(ndarray_to_bytes(a)) for a in masked[nid])
    total = [sum(masked[nid][k] for nid in alive) for k in range(2)]
    for nid in alive:  # unmask: each survivor answers for its neighbourhood
        down[nid] += 8 * len(hood[nid])
        up[nid] += sum(8 + len(own[nid][j][0 if j not in dead else 1]) for j in hood[nid])
    for owner in ids:
        holders = [h for h in hood[owner] if h not in dead]
        secret = combine_shares([own[h][owner][0 if owner not in dead else 1] for h in holders])
        if owner not in dead:
            masks = pseudo_rand_gen(secret, MOD, [a.shape for a in total])
            total = [a - m for a, m in zip(total, masks, strict=True)]
            continue
        for j in hood[owner] - {owner}:
            if j in dead:
                continue
            key = generate_shared_key(bytes_to_private_key(secret), bytes_to_public_key(keys[j][1]))
            masks = pseudo_rand_gen(key, MOD, [a.shape for a in total])
            total = [a + m if owner > j else a - m for a, m in zip(total, masks, strict=True)]
    total = [a % MOD for a in total]
    mean = dequantize([total[1]], CLIP, TARGET)[0] - (len(alive) - 1) * CLIP
    mean *= TARGET / total[0][0]
    elapsed = time.perf_counter() - started
    exact = vectors[[nid - 1 for nid in alive]].mean(axis=0)
    print(json.dumps({
        "seconds": elapsed,
        "bytes_per_client": float(np.mean([up[i] + down[i] for i in alive])),
        "max_abs_error": float(np.abs(mean - exact).max()),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
