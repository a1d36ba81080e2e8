"""Secure aggregation for federated rounds: SecAgg+ (Bell, Bonawitz, Gascon, Lepoint, Raykova,
"Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020), the sparse-graph
version of SecAgg (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
Machine Learning", CCS 2017).

The server learns only the sum of the clients' (fixed-point encoded) updates; clients that
drop out mid-round are recovered from Shamir shares held by their neighbours, up to a
threshold beyond which the round aborts with `SecAggAborted` and nothing is released.
"""

from tinylarge.secure.secagg.encoding import FixedPoint
from tinylarge.secure.secagg.protocol import RoundTranscript, SecAggAborted, run_round
from tinylarge.secure.secagg.secure_sum import SecAggPlus

__all__ = ["FixedPoint", "RoundTranscript", "SecAggAborted", "SecAggPlus", "run_round"]
