"""Device agents of the hybrid language model: many `LmDevice` in one asyncio process, each
generating its own text, scheme after scheme.

Each device has its own MQTT connection, identity and session, and its own decoding state of
the draft model (`LanguageModel.start` / ``extend``; the model's weights are shared). For every
scheme, every device starts from its prompt and generates ``tokens_per_device`` tokens (a
`TokenStream`): each token is drafted (`HybridScheme.draft`), kept on the device or sent
(`HybridScheme.request`), and final when the edge's reply comes; a token whose reply does not
come in time is the device's own draft (LLM only: a sample of its own model), counted as timed
out. No token is ever lost. The scheme's run ends when every device is done. With a link plan
(`tinylarge.deploy.hlm_link`), each token first takes the device MCU's drafting time and the
sealing, a request then takes its emulated uplink before it is published and its reply its
emulated downlink. As in the simulator (`tinylarge.sim.hybrid_lm_network`): a device in outage
gets no uplink grant and knows at once, so it keeps its draft (``FALLBACK``; LLM only, without
a draft, waits its deadline); a request lost to HARQ failures or a reply lost on the air costs
the device its reply deadline, counted from the moment the request leaves it, and leaves it
its own token (``TIMED_OUT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from torch import Tensor

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.clock import PreciseTimer
from tinylarge.deploy.device import FleetConfig
from tinylarge.deploy.fleet import device_certificates
from tinylarge.deploy.hlm_device import Exchange, LmDevice
from tinylarge.deploy.hlm_link import TokenLinkPlan
from tinylarge.deploy.hlm_protocol import TokenEnvelope
from tinylarge.deploy.hlm_records import FALLBACK, TokenRecords
from tinylarge.deploy.pki import TlsFiles
from tinylarge.deploy.protocol import Topics
from tinylarge.deploy.records import BY_EDGE, ON_DEVICE, TIMED_OUT
from tinylarge.integrate.hybrid_lm.schemes import Draft, HybridScheme, Request, SlmOnly
from tinylarge.integrate.hybrid_lm.wire import encode
from tinylarge.models.text.language_model import LanguageModel
from tinylarge.secure.identity import Identity
from tinylarge.seeding import derive_seed


@dataclass(frozen=True)
class StreamSettings:
    """How devices talk to the edge about tokens.

    Attributes
    ----------
    deadline_s : float
        A token's reply timer, s: after it the device keeps its own token.
    retry_s : float
        A request without a reply is re-sent after this long, s.
    sync_tokens : int
        Tokens of its sequence a device's FULL request carries (the end of it; the edge's
        model re-primes on at most its context).
    """

    deadline_s: float = 0.5
    retry_s: float = 0.1
    sync_tokens: int = 128

    def __post_init__(self) -> None:
        if not (self.deadline_s > 0 and self.retry_s > 0) or self.sync_tokens < 1:
            raise ValueError(
                f"deadline_s and retry_s must be > 0 and sync_tokens >= 1, got "
                f"{self.deadline_s}, {self.retry_s}, {self.sync_tokens}"
            )


@dataclass(frozen=True)
class SchemeRun:
    """One scheme's run over the fleet: the scheme, every device's prompt (device ``i``
    gets ``prompts[i % len(prompts)]``), the tokens per device, the seed of the devices'
    sampling and the emulated links (None: none)."""

    scheme: HybridScheme
    prompts: Sequence[Sequence[int]]
    tokens_per_device: int
    seed: int = 0
    link: TokenLinkPlan | None = None


class TokenStream:
    """One device generating one sequence under one scheme (see the module doc)."""

    def __init__(
        self,
        device: LmDevice,
        model: LanguageModel,
        run: SchemeRun,
        row: int,
        settings: StreamSettings,
        timer: PreciseTimer,
    ) -> None:
        self.device, self.model, self.scheme = device, model, run.scheme
        self.row, self.settings, self.timer = row, settings, timer
        self.link = None if run.link is None else run.link.device(row)
        prompt = [int(t) for t in run.prompts[row % len(run.prompts)]]
        self.seq, self.kept = list(prompt), list[int]()
        self.state = model.start(prompt)
        self._fed = len(prompt)
        self.generator = torch.Generator().manual_seed(
            derive_seed(run.seed, "hlm_deploy", run.scheme.name, str(row))
        )
        self._fallback = SlmOnly(run.scheme.temperature)

    def _logits(self) -> Tensor:
        """The draft model's logits after the whole sequence (feeding what it has not seen)."""
        if self._fed < len(self.seq):
            logits: Tensor = self.model.extend([self.state], [self.seq[self._fed :]])[0]
            self._fed = len(self.seq)
            return logits
        return self.state.last_logits

    def _envelope(self, request: Request, full: bool) -> TokenEnvelope:
        """The request as sent: incremental (its kept tokens), or FULL (the sequence's end)."""
        if full:
            request = replace(request, kept=tuple(self.seq[-self.settings.sync_tokens :]))
        body = encode(request, self.model.vocab_size)
        return TokenEnvelope(self.scheme.name, full, len(self.seq) - len(request.kept), body)

    async def run(self, records: TokenRecords, t0: float) -> None:
        """Generate every token of the row, recording each (times from ``t0``, monotonic)."""
        for k in range(records.tokens):
            await self._token(records, k, t0)

    async def _token(self, records: TokenRecords, k: int, t0: float) -> None:
        row, link = self.row, self.link
        start = time.monotonic()
        records.started_s[row, k] = start - t0
        draft = self.scheme.draft(self._logits(), self.generator) if (
            self.scheme.uses_draft_model
        ) else None  # fmt: skip
        request = self.scheme.request(self.kept, draft)
        if link is not None:
            local = (link.draft_s if draft is not None else 0.0) + (
                link.seal_s if request is not None else 0.0
            )
            await self.timer.sleep_until(start + local)
        if request is None:
            if draft is None:
                raise ValueError(f"scheme {self.scheme.name!r} neither drafts nor sends")
            route, final, accepted = ON_DEVICE, draft.token, True
        else:
            records.uploaded[row, k] = True
            exchange = await self._send(request, records, k)
            _record(records, row, k, exchange, t0)
            if exchange.reply is None:
                local = records.outage[row, k] and draft is not None
                route, final, accepted = FALLBACK if local else TIMED_OUT, self._own(draft), False
            else:
                route, final = BY_EDGE, exchange.reply.token
                accepted = exchange.reply.accepted
        self.kept = [] if route == BY_EDGE else [*self.kept, final]
        self.seq.append(final)
        records.route[row, k], records.token[row, k] = route, final
        records.accepted[row, k] = accepted
        records.ended_s[row, k] = time.monotonic() - t0

    def _own(self, draft: Draft | None) -> int:
        """The device's own token when the edge's does not come: its draft, or (LLM only,
        nothing drafted) a sample of its own model."""
        if draft is not None:
            return draft.token
        return self._fallback.draft(self._logits(), self.generator).token

    async def _send(self, request: Request, records: TokenRecords, k: int) -> Exchange:
        """The request over the emulated uplink, the real broker and edge, the emulated
        downlink (module doc); the exchange, its reply None when none came in time. The
        deadline counts from the moment the request leaves the device (as the simulator's)."""
        link = self.link
        give_up = time.monotonic() + self.settings.deadline_s
        if link is not None and link.lost[0, k]:
            records.radio_lost[self.row, k] = True
            records.outage[self.row, k] = link.outage[0, k]
            if not (link.outage[0, k] and self.scheme.uses_draft_model):
                await self.timer.sleep_until(give_up)  # no grant and no draft, or HARQ failed
            return Exchange()
        if link is not None:
            await self.timer.sleep_until(time.monotonic() + float(link.uplink_s[0, k]))
        exchange = await self.device.exchange(
            lambda full: self._envelope(request, full), len(self.seq),
            max(0.0, give_up - time.monotonic()), self.settings.retry_s,
        )  # fmt: skip
        if link is None or exchange.reply is None:
            return exchange
        down = float(link.downlink_s[0, k])
        if link.reply_lost[0, k] or time.monotonic() + down > give_up:
            records.radio_lost[self.row, k] = True
            self.device.in_step = None  # the edge decided a token the device will not use
            await self.timer.sleep_until(give_up)
            return replace(exchange, reply=None)
        await self.timer.sleep_until(time.monotonic() + down)
        return exchange


def _record(records: TokenRecords, row: int, k: int, exchange: Exchange, t0: float) -> None:
    """The bytes and attempts of a token's exchange, and with one attempt answered its round
    trip (times from ``t0``): several attempts or a SYNC leave no single request whose reply
    it was, so those tokens are not timed."""
    records.payload_up[row, k] = exchange.payload_up
    records.bytes_up[row, k], records.bytes_down[row, k] = exchange.bytes_up, exchange.bytes_down
    records.mqtt_bytes_up[row, k] = exchange.mqtt_bytes_up
    records.mqtt_bytes_down[row, k] = exchange.mqtt_bytes_down
    records.transport_bytes_up[row, k] = exchange.transport_bytes_up
    records.transport_bytes_down[row, k] = exchange.transport_bytes_down
    records.attempts[row, k], records.full[row, k] = exchange.attempts, exchange.full
    if exchange.attempts == 1 and math.isfinite(exchange.replied_s):
        records.request_id[row, k] = exchange.request_id
        records.published_s[row, k] = exchange.published_s - t0
        records.replied_s[row, k] = exchange.replied_s - t0


@dataclass
class FleetEvents:
    """What the devices saw besides their tokens (summed over devices)."""

    unattached_at_start: int = 0
    hello_retries: int = 0
    rejected_messages: int = 0
    late_replies: int = 0
    syncs: int = 0
    #: when the first scheme started, every device attached or given up on (`time.time`, s)
    started_unix: float = math.nan


class LmFleet:
    """Device ``i`` = ``identities[i]``, drafting with ``model`` (see the module doc); over a
    locked-down broker its certificate is ``tls[i]``."""

    def __init__(
        self,
        model: LanguageModel,
        identities: Sequence[Identity],
        edge_key: Ed25519PublicKey,
        *,
        topics: Topics,
        config: FleetConfig | None = None,
        settings: StreamSettings | None = None,
        tls: Sequence[TlsFiles] | None = None,
    ) -> None:
        self.model, self.topics = model, topics
        self.config = config or FleetConfig()
        self.settings = settings or StreamSettings(deadline_s=self.config.deadline_s)
        certificates = device_certificates(identities, tls)
        self.devices = [
            LmDevice(i, edge_key, topics, self.config, model.vocab_size, c)
            for i, c in zip(identities, certificates, strict=True)
        ]
        self.events = FleetEvents()

    async def run(
        self,
        address: BrokerAddress,
        runs: Sequence[SchemeRun],
        started_file: Path | None = None,
    ) -> dict[str, TokenRecords]:
        """Connect every device, attach (at most ``handshake_timeout_s``; a device still
        without a session keeps trying and meanwhile times out), then run each scheme in
        turn; the records by scheme. When the first scheme starts, ``started_file`` (if
        given) gets the instant (`time.time`), for whoever watches from outside; `events`
        has it too (``started_unix``)."""
        stop = asyncio.Event()
        timer = PreciseTimer.acquire(asyncio.get_running_loop())
        connections = [asyncio.create_task(d.run(address, stop)) for d in self.devices]
        try:
            attached = asyncio.gather(*(d.attached.wait() for d in self.devices))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attached, self.config.handshake_timeout_s)
            self.events.unattached_at_start = sum(d.session is None for d in self.devices)
            self.events.started_unix = time.time()
            if started_file is not None:
                started_file.write_text(f"{self.events.started_unix!r}\n")
            gc.collect()  # see `tinylarge.deploy.fleet`: no full-collection stalls later
            gc.freeze()
            return {run.scheme.name: await self._scheme(run, timer) for run in runs}
        finally:
            stop.set()
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            timer.release()
            self._count()

    async def _scheme(self, run: SchemeRun, timer: PreciseTimer) -> TokenRecords:
        if run.link is not None and run.link.shape != (len(self.devices), run.tokens_per_device):
            raise ValueError(
                f"the link plan is for {run.link.shape} (devices, tokens), the run for "
                f"{(len(self.devices), run.tokens_per_device)}"
            )
        records = TokenRecords(len(self.devices), run.tokens_per_device)
        streams = []
        for row, device in enumerate(self.devices):
            device.in_step = None  # a new sequence: the first request is FULL
            streams.append(TokenStream(device, self.model, run, row, self.settings, timer))
        t0 = time.monotonic()
        await asyncio.gather(*(s.run(records, t0) for s in streams))
        return records

    def _count(self) -> None:
        for d in self.devices:
            self.events.hello_retries += d.hello_retries
            self.events.rejected_messages += d.rejected
            self.events.late_replies += d.late_replies
            self.events.syncs += d.syncs
