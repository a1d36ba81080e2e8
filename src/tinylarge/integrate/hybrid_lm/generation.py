"""Text generation by a hybrid scheme, device and edge in one process (no network).

The reference loop: the simulator samples continuations with it, and the deployment runs the
same steps on two machines (the device's `HybridScheme.draft` / `HybridScheme.request`, the
edge's `serve_requests`). Every message goes through its wire encoding
(`tinylarge.integrate.hybrid_lm.wire`), as on a real link.

At each step every sequence's device drafts from its model's logits; the messages of the step
are served together by the edge (one batched `LanguageModel.extend` over the devices' states,
then one batched verification); each device then appends its token to its own model's state.
Random draws come from one `torch.Generator` in a fixed order (drafts, then verification), so
a run is reproducible from its seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

from tinylarge.integrate.hybrid_lm.schemes import (
    Draft,
    HybridScheme,
    LlmOnly,
    Request,
    SpeculativeScheme,
)
from tinylarge.integrate.hybrid_lm.wire import LlmRequest, Message, TokenReply, decode, encode
from tinylarge.models.text.language_model import DecodeState, LanguageModel

M = TypeVar("M", bound=Message)


@dataclass
class EdgeSession:
    """The edge's state for one device.

    Attributes
    ----------
    state : DecodeState or None
        The target model's decoding state (None until the device's first request, whose kept
        tokens are the prompt).
    pending : list of int
        The edge's last reply token, which its state has not consumed yet.
    """

    state: DecodeState | None = None
    pending: list[int] = field(default_factory=list)


def check_request(scheme: HybridScheme, request: Request, vocab: int) -> None:
    """``ValueError`` when ``scheme``'s edge cannot serve ``request`` (wrong type, malformed
    payload); check each request before batching so that one bad request fails alone."""
    if isinstance(scheme, SpeculativeScheme):
        scheme.decode_request(request, vocab)
    elif not isinstance(scheme, LlmOnly):
        raise ValueError(f"scheme {scheme.name!r} sends nothing to the edge")
    elif not isinstance(request, LlmRequest):
        raise ValueError(f"scheme 'llm' expects an LlmRequest, got {request!r}")


def serve_requests(
    scheme: HybridScheme,
    target: LanguageModel,
    sessions: Sequence[EdgeSession],
    requests: Sequence[Request],
    generator: torch.Generator,
) -> list[TokenReply]:
    """The edge: serve one request from each of several devices in one batch.

    Each session's state consumes its pending reply token and the request's kept tokens (a new
    session starts on them), then the scheme verifies all requests at once.

    Parameters
    ----------
    scheme : HybridScheme
    target : LanguageModel
        The edge's model.
    sessions : sequence of EdgeSession
        One per request, distinct; updated in place.
    requests : sequence of TokenRequest or LlmRequest
    generator : torch.Generator

    Returns
    -------
    list of TokenReply
    """
    if len(sessions) != len(requests) or len({id(s) for s in sessions}) != len(sessions):
        raise ValueError("serve_requests needs one distinct session per request")
    for request in requests:
        check_request(scheme, request, target.vocab_size)
    rows: list[torch.Tensor | None] = [None] * len(requests)
    extended = []
    for i, (session, request) in enumerate(zip(sessions, requests, strict=True)):
        tokens = session.pending + list(request.kept)
        if session.state is None:
            if not tokens:
                raise ValueError("a device's first request must carry its prompt")
            session.state = target.start(tokens)
            rows[i] = session.state.last_logits
        else:
            extended.append((i, session.state, tokens))
    if extended:
        logits = target.extend([s for _, s, _ in extended], [t for _, _, t in extended])
        for (i, _, _), row in zip(extended, logits, strict=True):
            rows[i] = row
    stacked = torch.stack([r for r in rows if r is not None]) if requests else torch.zeros(0, 1)
    replies = scheme.verify_many(stacked, requests, generator) if requests else []
    for session, reply in zip(sessions, replies, strict=True):
        session.pending = [reply.token]
    return replies


@dataclass(frozen=True)
class Generation:
    """One generated continuation (arrays of shape (n_tokens,)).

    Attributes
    ----------
    tokens : ndarray of int64
        The generated tokens (the prompt not included).
    uploaded : ndarray of bool
        A message went to the edge for this token.
    accepted : ndarray of bool
        The token is the device's draft (kept unsent, or accepted by the edge); False for
        every LLM-only token.
    uncertainty : ndarray of float64
        The draft's uncertainty (NaN where the scheme measures none).
    """

    tokens: NDArray[np.int64]
    uploaded: NDArray[np.bool_]
    accepted: NDArray[np.bool_]
    uncertainty: NDArray[np.float64]


def _check_models(
    scheme: HybridScheme, draft: LanguageModel, target: LanguageModel, prompts: list[list[int]]
) -> None:
    both = scheme.uses_draft_model and scheme.uses_target_model
    if both and draft.vocab_size != target.vocab_size:
        raise ValueError(
            f"draft and target vocabularies differ: {draft.vocab_size} vs "
            f"{target.vocab_size} tokens"
        )
    if not prompts or any(not p for p in prompts):
        raise ValueError("give at least one prompt, each of at least one token")


def _through_wire(message: M, vocab: int) -> M:
    """``message`` encoded and decoded again, as the other side of a link would see it."""
    wired = decode(encode(message, vocab), vocab)
    if type(wired) is not type(message):
        raise AssertionError(f"{message!r} decoded as {wired!r}")
    return wired


def _step(
    scheme: HybridScheme,
    target: LanguageModel,
    drafts: list[Draft | None],
    unsent: list[list[int]],
    sessions: list[EdgeSession],
    generator: torch.Generator,
) -> dict[int, TokenReply]:
    """Send this step's messages (through their wire encoding) and serve them together."""
    vocab = target.vocab_size
    messages: dict[int, Request] = {}
    for i, d in enumerate(drafts):
        message = scheme.request(unsent[i], d)
        if message is not None:
            messages[i] = _through_wire(message, vocab)
    rows = list(messages)
    replies = serve_requests(scheme, target, [sessions[i] for i in rows],
                             [messages[i] for i in rows], generator)  # fmt: skip
    return {i: _through_wire(r, vocab) for i, r in zip(rows, replies, strict=True)}


@dataclass
class _Columns:
    """Per-prompt records of a run, filled step by step (arrays of shape (prompts, tokens))."""

    tokens: NDArray[np.int64]
    uploaded: NDArray[np.bool_]
    accepted: NDArray[np.bool_]
    uncertainty: NDArray[np.float64]

    @classmethod
    def empty(cls, prompts: int, n_tokens: int) -> _Columns:
        shape = (prompts, n_tokens)
        return cls(np.zeros(shape, np.int64), np.zeros(shape, np.bool_),
                   np.zeros(shape, np.bool_), np.full(shape, math.nan))  # fmt: skip

    def record(self, i: int, step: int, draft: Draft | None, reply: TokenReply | None) -> int:
        """Record prompt ``i``'s token at ``step`` and return it."""
        if draft is not None:
            self.uncertainty[i, step] = draft.uncertainty
        if reply is not None:
            self.tokens[i, step], self.uploaded[i, step] = reply.token, True
            self.accepted[i, step] = reply.accepted
        elif draft is not None:
            self.tokens[i, step], self.accepted[i, step] = draft.token, True
        else:
            raise AssertionError("a scheme must draft or send every token")
        return int(self.tokens[i, step])


def generate_many(
    scheme: HybridScheme,
    draft: LanguageModel,
    target: LanguageModel,
    prompts: Sequence[Sequence[int]],
    n_tokens: int,
    generator: torch.Generator,
) -> list[Generation]:
    """Continue several prompts by ``scheme``, in lock-step (module docstring).

    Parameters
    ----------
    scheme : HybridScheme
    draft, target : LanguageModel
        The device's and the edge's models (one vocabulary; a model the scheme does not use
        is never called).
    prompts : sequence of sequence of int
        Non-empty prompts.
    n_tokens : int
        Tokens to generate per prompt, >= 1.
    generator : torch.Generator

    Returns
    -------
    list of Generation, one per prompt
    """
    lists = [[int(t) for t in p] for p in prompts]
    _check_models(scheme, draft, target, lists)
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
    states = [draft.start(p) for p in lists] if scheme.uses_draft_model else []
    logits = torch.stack([s.last_logits for s in states]) if states else None
    sessions = [EdgeSession() for _ in lists]
    unsent = [list(p) for p in lists]
    out = _Columns.empty(len(lists), n_tokens)
    for step in range(n_tokens):
        drafts: list[Draft | None] = [None] * len(lists)
        if logits is not None:
            drafts = list(scheme.draft_many(logits, generator))
        replies = _step(scheme, target, drafts, unsent, sessions, generator)
        for i, d in enumerate(drafts):
            token = out.record(i, step, d, replies.get(i))
            unsent[i] = [] if i in replies else [*unsent[i], token]
        if states and step < n_tokens - 1:
            logits = draft.extend(states, [[int(t)] for t in out.tokens[:, step]])
    return [
        Generation(out.tokens[i], out.uploaded[i], out.accepted[i], out.uncertainty[i])
        for i in range(len(lists))
    ]


def generate(
    scheme: HybridScheme,
    draft: LanguageModel,
    target: LanguageModel,
    prompt: Sequence[int],
    n_tokens: int,
    generator: torch.Generator,
) -> Generation:
    """Continue one prompt by ``scheme`` (`generate_many` with one prompt)."""
    return generate_many(scheme, draft, target, [prompt], n_tokens, generator)[0]
