"""Why a client's connection to the broker keeps failing, said once instead of retried in
silence.

A broker with mutual TLS refuses a client without a certificate, with a revoked one or one
from another CA during the TLS handshake; aiomqtt then reports every such refusal as
``Operation timed out`` (its connect timeout, 10 s by default), so an agent that only retried
would loop quietly forever. `RefusalWatch` follows one client's run of failed connections:
once it has lasted `DIAGNOSE_AFTER_S`, it asks `tinylarge.deploy.mqtt.diagnose_refusal`
(a connection attempt of its own that names the reason) and logs the answer once per run of
failures. A broker that is down for a restart (refused at TCP, back within a second or two)
is never diagnosed: it is back before the run lasts that long.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tinylarge.deploy.broker import BrokerAddress
from tinylarge.deploy.mqtt import BrokerRefused, diagnose_refusal
from tinylarge.deploy.pki import TlsFiles

#: How long a run of failed connections lasts before its reason is asked for, s: longer than
#: a broker restart (about 1 s in a fault run), shorter than aiomqtt's connect timeout (10 s),
#: so a client refused at TLS hears why on its first failure.
DIAGNOSE_AFTER_S = 5.0
#: How long the diagnosis may take, s.
DIAGNOSE_TIMEOUT_S = 5.0
#: Reasons that retrying with the same certificate and URL cannot cure
#: (`tinylarge.deploy.mqtt.RefusalReason`).
PERMANENT = frozenset(
    {"no_certificate", "revoked", "unknown_ca", "bad_certificate", "tls_required",
     "server_untrusted"}
)  # fmt: skip

log = logging.getLogger("tinylarge.deploy")


class RefusalWatch:
    """One client's run of failed connections to ``address`` (with ``tls``, None: plain).

    Call `begin` before each attempt, `connected` once an attempt got through, `failed`
    after one failed; `refusal` is the last reason found (None: none found yet).
    """

    def __init__(
        self,
        address: BrokerAddress,
        tls: TlsFiles | None,
        name: str,
        *,
        after_s: float = DIAGNOSE_AFTER_S,
    ) -> None:
        self.address, self.tls, self.name, self.after_s = address, tls, name, after_s
        self.refusal: BrokerRefused | None = None
        self._since: float | None = None
        self._diagnosed = False

    def begin(self) -> None:
        """An attempt starts (the run of failures starts with its first attempt)."""
        if self._since is None:
            self._since = time.monotonic()

    def connected(self) -> None:
        """An attempt got through: the run of failures is over."""
        self._since, self._diagnosed, self.refusal = None, False, None

    async def failed(self) -> BrokerRefused | None:
        """An attempt failed; the broker's reason once the run has lasted ``after_s`` (asked
        once per run, logged as a warning), else None."""
        since = self._since
        if since is None or self._diagnosed or time.monotonic() - since < self.after_s:
            return None
        self._diagnosed = True
        refusal = await asyncio.to_thread(
            diagnose_refusal, self.address, self.tls, DIAGNOSE_TIMEOUT_S
        )
        if refusal is not None:
            self.refusal = refusal
            log.warning("%s: %s; retrying", self.name, refusal)
        return refusal

    @property
    def permanent(self) -> bool:
        """The last reason found is one that retrying cannot cure."""
        return self.refusal is not None and self.refusal.reason in PERMANENT
