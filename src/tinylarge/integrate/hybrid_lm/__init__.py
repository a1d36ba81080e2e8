"""Hybrid tiny/large language models: a draft LM on the device, a target LM at the edge.

The schemes (`schemes`: SLM only, LLM only, HLM, U-HLM, CU-HLM) are shared by the simulator
and the deployment. Their parts:

- `speculative`: speculative sampling's verification and what it outputs (exact: the output
  is distributed as the target's).
- `uncertainty`: the draft's uncertainty (perturbed temperatures, entropy, max probability).
- `calibration`: U-HLM's skip threshold from the fit of rejection against uncertainty.
- `payload`: the draft distribution on the uplink (full fp16 or truncated and quantized).
- `wire`: the byte-exact messages between device and edge, and their sizes.
- `generation`: the in-process reference loop (device and edge without a network).
- `teacher_forced`: both models on held-out text, and each scheme's per-token trace.
- `quality`: next-token accuracy relative to the LLM, calibration and the threshold sweep.
"""

from tinylarge.integrate.hybrid_lm.calibration import (
    SKIP_NOTHING,
    RejectionFit,
    Threshold,
    threshold_for,
)
from tinylarge.integrate.hybrid_lm.generation import (
    EdgeSession,
    Generation,
    generate,
    generate_many,
    serve_requests,
)
from tinylarge.integrate.hybrid_lm.payload import DistributionCodec
from tinylarge.integrate.hybrid_lm.quality import (
    Calibration,
    ThresholdSweep,
    calibrate,
    llm_accuracy,
    next_token_accuracy,
    quality_vs_llm,
    threshold_sweep,
)
from tinylarge.integrate.hybrid_lm.schemes import (
    CuHlm,
    Draft,
    Hlm,
    HybridScheme,
    LlmOnly,
    SlmOnly,
    SpeculativeScheme,
    UHlm,
    make_scheme,
)
from tinylarge.integrate.hybrid_lm.speculative import Verdict, verify, verify_batch
from tinylarge.integrate.hybrid_lm.teacher_forced import (
    DraftScores,
    PositionScores,
    TokenTrace,
    scheme_trace,
    score_positions,
)
from tinylarge.integrate.hybrid_lm.wire import LlmRequest, TokenReply, TokenRequest

__all__ = [
    "SKIP_NOTHING",
    "Calibration",
    "CuHlm",
    "DistributionCodec",
    "Draft",
    "DraftScores",
    "EdgeSession",
    "Generation",
    "Hlm",
    "HybridScheme",
    "LlmOnly",
    "LlmRequest",
    "PositionScores",
    "RejectionFit",
    "SlmOnly",
    "SpeculativeScheme",
    "Threshold",
    "ThresholdSweep",
    "TokenReply",
    "TokenRequest",
    "TokenTrace",
    "UHlm",
    "Verdict",
    "calibrate",
    "generate",
    "generate_many",
    "llm_accuracy",
    "make_scheme",
    "next_token_accuracy",
    "quality_vs_llm",
    "scheme_trace",
    "score_positions",
    "serve_requests",
    "threshold_for",
    "threshold_sweep",
    "verify",
    "verify_batch",
]
