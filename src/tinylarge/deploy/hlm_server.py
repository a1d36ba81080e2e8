"""The edge of the hybrid language model: verifies the devices' draft tokens with the target
language model, batched across devices, over MQTT.

`LmEdgeServer` is an `EdgeServer` whose requests are token requests
(`tinylarge.deploy.hlm_protocol`): it keeps its base's handshakes, sessions (with key
confirmation), registry reloads, dynamic batching (the first waiting request, then those that
arrive within ``max_wait_s``, up to ``max_batch``), reconnection and publishing, and replaces
what a request is and how a batch is served. A message is checked completely before it costs
model time: it opens under the device's session, it is a TOKEN_REQUEST, its envelope and the
scheme's request decode, every token id is in the vocabulary. Anything else is counted by
reason and dropped.

The edge keeps one target-model decoding state per device (`LanguageModel.start` / ``extend``)
and the sequence length it knows. A batch is served in one `LanguageModel.extend` over the
states of its devices (each appends the token of its last reply and the tokens it kept since);
then each scheme verifies its rows (`tinylarge.integrate.hybrid_lm.schemes`). A request that
repeats the last one answered (a device re-sending after a lost reply, or MQTT's at-least-once
delivery) gets the same reply again, so the edge's state never runs ahead of the device's; a
request that does not continue the known sequence (a new edge, a device that kept its own
token after a timeout) gets SYNC, and the device's FULL request re-primes the state.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from tinylarge.deploy.clock import PreciseTimer
from tinylarge.deploy.hlm_protocol import (
    OK,
    SYNC,
    ReplyEnvelope,
    TokenEnvelope,
    decode_request,
)
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.server import EdgeServer, ServerConfig, _Pending
from tinylarge.integrate.hybrid_lm.generation import EdgeSession, check_request, serve_requests
from tinylarge.integrate.hybrid_lm.schemes import HybridScheme, Request
from tinylarge.integrate.hybrid_lm.wire import LlmRequest, TokenRequest, decode, encode
from tinylarge.models.text.language_model import LanguageModel
from tinylarge.secure.identity import Identity, Registry
from tinylarge.secure.messages import MessageType


def _no_frames(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    raise RuntimeError("the language-model edge runs no frame model")


@dataclass
class _Stream:
    """What the edge knows of one device's sequence under one scheme."""

    scheme: str
    session: EdgeSession
    #: the sequence length the edge knows (tokens its state consumed + its pending reply)
    known: int = 0
    #: the last request answered and its reply payload (a repeat gets the same reply)
    last: TokenEnvelope | None = None
    last_reply: bytes = b""


def _continues(stream: _Stream, envelope: TokenEnvelope) -> bool:
    """Whether a (not FULL) request continues the sequence the edge knows."""
    return (stream.scheme, stream.known) == (envelope.scheme, envelope.position)


@dataclass(frozen=True)
class _Item:
    """One checked request of a batch: its batch index, envelope and the scheme's request."""

    index: int
    pending: _Pending
    envelope: TokenEnvelope
    request: Request

    @property
    def decided(self) -> int:
        """The sequence index of the token this request asks for."""
        return self.envelope.position + len(self.request.kept)


class LmEdgeServer(EdgeServer):
    """Verify token requests of the devices enrolled in ``registry`` with ``target``.

    Parameters
    ----------
    target : LanguageModel
        The edge's (large) language model.
    schemes : mapping of scheme name -> HybridScheme
        The schemes it serves (`tinylarge.integrate.hybrid_lm.schemes.make_scheme`).
    identity, registry : Identity, Registry
        The edge's signing identity and the enrolled devices.
    topics : Topics
        The deployment's language-model topics (`tinylarge.deploy.hlm_protocol.lm_topics`).
    max_batch, max_wait_s : int, float
        Dynamic batching: the largest batch (requests) and the first request's wait (s).
    qos : {0, 1}
        MQTT QoS of the replies.
    seed : int
        Seeds the edge's sampling (acceptance draws, resampled tokens).
    registry_path : Path, optional
        The registry file, re-read when an unknown device says hello.
    """

    def __init__(
        self,
        target: LanguageModel,
        schemes: Mapping[str, HybridScheme],
        identity: Identity,
        registry: Registry,
        *,
        topics: Topics,
        max_batch: int,
        max_wait_s: float,
        qos: int = 1,
        seed: int = 0,
        registry_path: Path | None = None,
    ) -> None:
        batching = ServerConfig((1,), 1.0, 0, 2, max_batch=max_batch, max_wait_s=max_wait_s,
                                qos=qos)  # fmt: skip
        super().__init__(_no_frames, batching, identity, registry, topics=topics,
                         registry_path=registry_path)  # fmt: skip
        self.target, self.schemes = target, dict(schemes)
        self.streams: dict[str, _Stream] = {}
        #: what the language-model edge counted besides its base: repeats answered again,
        #: SYNC replies, FULL requests (fresh states) and batches that failed
        self.lm: Counter[str] = Counter()
        self.generator = torch.Generator().manual_seed(seed)
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="tinylarge-lm-edge")

    # -- checking what arrives ------------------------------------------------------------------
    def _frame(self, device_id: str, wire: bytes) -> None:
        opened = self._open(device_id, wire)
        if opened is None:
            return
        msg_type, payload, session = opened
        if msg_type != MessageType.TOKEN_REQUEST:
            self.reject("not_a_token_request")
            return
        try:
            self._parse(payload)
        except ValueError:
            self.reject("bad_token_request")
            return
        self._accept(device_id, payload, session)

    def _parse(self, payload: bytes) -> tuple[TokenEnvelope, Request]:
        """The envelope and the scheme's request of a payload; ``ValueError`` if either is
        malformed, the scheme is not served here, or its edge cannot serve the request (a
        FULL request must carry the sequence's end)."""
        envelope = decode_request(payload)
        scheme = self.schemes.get(envelope.scheme)
        if scheme is None or not scheme.uses_target_model:
            raise ValueError(f"scheme {envelope.scheme!r} is not served here")
        request = decode(envelope.body, self.target.vocab_size)
        if not isinstance(request, TokenRequest | LlmRequest):
            raise ValueError("a token reply is no request")
        check_request(scheme, request, self.target.vocab_size)
        if envelope.full and not request.kept:
            raise ValueError("a FULL request carries no tokens")
        return envelope, request

    # -- serving a batch ------------------------------------------------------------------------
    async def _batches(self, loop: asyncio.AbstractEventLoop, timer: PreciseTimer) -> None:
        while True:
            batch = await self._next_batch(timer)
            started = time.perf_counter()
            try:
                replies = await loop.run_in_executor(self._model_thread, self._serve, batch)
            except Exception:  # a failed batch must not stop the edge: counted
                self.lm["failed_batches"] += 1
                continue
            self._served(len(batch), time.perf_counter() - started)
            for pending, payload in zip(batch, replies, strict=True):
                self._answer(pending, MessageType.TOKEN_REPLY, payload)
            self.state.last_reply_s = time.monotonic()

    def _serve(self, batch: list[_Pending]) -> list[bytes]:
        """Reply payloads of a batch (in the model thread). A device with several requests in
        one batch has them served in turn, each after the one before."""
        replies: dict[int, bytes] = {}
        left = list(enumerate(batch))
        while left:
            seen: set[str] = set()
            now: list[tuple[int, _Pending]] = []
            later: list[tuple[int, _Pending]] = []
            for k, pending in left:
                (later if pending.device_id in seen else now).append((k, pending))
                seen.add(pending.device_id)
            replies.update(self._serve_round(now))
            left = later
        return [replies[k] for k in range(len(batch))]

    def _serve_round(self, round_: list[tuple[int, _Pending]]) -> dict[int, bytes]:
        """Replies to requests of distinct devices: repeats and SYNCs at once, the others by
        `serve_requests` (one batched extend and verification per scheme)."""
        replies: dict[int, bytes] = {}
        run: list[tuple[_Item, _Stream]] = []
        for k, pending in round_:
            envelope, request = self._parse(pending.frame)
            item = _Item(k, pending, envelope, request)
            stream = self.streams.get(pending.device_id)
            if stream is not None and stream.last == envelope:
                self.lm["repeats"] += 1
                replies[k] = stream.last_reply
            elif envelope.full:
                self.lm["full_requests"] += 1
                stream = _Stream(envelope.scheme, EdgeSession(), envelope.position)
                self.streams[pending.device_id] = stream
                run.append((item, stream))
            elif stream is None or not _continues(stream, envelope):
                self.lm["syncs"] += 1
                replies[k] = ReplyEnvelope(SYNC, item.decided).encode()
            else:
                run.append((item, stream))
        for name in {item.envelope.scheme for item, _ in run}:
            replies.update(self._verify([(i, s) for i, s in run if i.envelope.scheme == name]))
        return replies

    def _verify(self, run: list[tuple[_Item, _Stream]]) -> dict[int, bytes]:
        """Serve one scheme's requests together and advance their streams; a failure forgets
        the streams (their devices are answered SYNC next time) and is raised."""
        scheme = self.schemes[run[0][0].envelope.scheme]
        try:
            replies = serve_requests(
                scheme, self.target, [s.session for _, s in run], [i.request for i, _ in run],
                self.generator,
            )  # fmt: skip
        except Exception:
            for item, _ in run:
                self.streams.pop(item.pending.device_id, None)
            raise
        out: dict[int, bytes] = {}
        vocab = self.target.vocab_size
        for (item, stream), reply in zip(run, replies, strict=True):
            payload = ReplyEnvelope(OK, item.decided, encode(reply, vocab)).encode()
            stream.known, stream.last, stream.last_reply = item.decided + 1, item.envelope, payload
            out[item.index] = payload
        return out

    def stats(self) -> dict[str, object]:
        """The base's counters and the language-model edge's (``lm``), JSON-ready."""
        return {**super().stats(), "lm": dict(self.lm), "devices_known": len(self.streams)}
