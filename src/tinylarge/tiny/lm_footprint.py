"""The draft language model on a microcontroller: flash, RAM, MACs, latency and energy per token.

An estimate from the model's shape (`LmArchitecture`) and a board's measured throughput
(`tinylarge.tiny.mcu`), for int8 inference with a KV cache:

- **Flash**: every weight matrix (token and position embeddings, Q/K/V, output, MLP) in int8
  with one float32 scale per output row (per-channel quantization as in the TFLite int8
  specification, https://ai.google.dev/edge/litert/models/quantization_spec); biases int32;
  LayerNorm gains and biases float32. The output layer is tied to the token embedding, so it
  is stored once. Runtime code is not counted.
- **RAM**: the KV cache, ``2 x layers x context x d_model`` int8 values, plus the buffers of one
  token's step: the int8 residual stream, its normalized copy, Q/K/V and the MLP hidden layer
  (``9 d`` bytes), float32 attention scores for one head (``4 x context``) and float32 logits
  (``4 x vocab``).
- **MACs per token** at a context length: `macs_per_token`. Latency = MACs x the board's
  effective ``cycles_per_mac`` / clock (a whole-network figure measured on CNNs; attention and
  LayerNorm are not in those measurements, so treat it as an optimistic estimate). Energy =
  latency x the board's active power.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylarge.models.text.causal_transformer import LmArchitecture, macs_per_token
from tinylarge.models.text.language_model import OurLanguageModel
from tinylarge.tiny.mcu import MCU_PROFILES, McuProfile, mcu_profile

#: Bytes per float32 scale, int32 bias or float32 LayerNorm parameter.
_WORD = 4


def lm_flash_bytes(architecture: LmArchitecture) -> int:
    """Flash for the int8 weights of ``architecture`` (see the module docstring), bytes."""
    a, d = architecture, architecture.d_model
    matrix_values = a.vocab_size * d + a.context * d + a.layers * 12 * d * d
    output_rows = a.vocab_size + a.context + a.layers * 9 * d  # one scale per row
    biases = a.layers * 9 * d
    norms = a.layers * 4 * d + 2 * d
    return matrix_values + _WORD * (output_rows + biases + norms)


def lm_kv_cache_bytes(architecture: LmArchitecture, context: int) -> int:
    """RAM for int8 keys and values of ``context`` tokens in every layer, bytes."""
    return 2 * architecture.layers * context * architecture.d_model


def lm_activation_bytes(architecture: LmArchitecture, context: int) -> int:
    """RAM for one token's working buffers at ``context`` tokens, bytes (module docstring)."""
    return 9 * architecture.d_model + _WORD * context + _WORD * architecture.vocab_size


@dataclass(frozen=True)
class LmMcuCost:
    """One language model generating on one board, per token.

    Attributes
    ----------
    mcu : str
        Profile name (`tinylarge.tiny.mcu.MCU_PROFILES`).
    context : int
        Tokens attended to (the KV cache holds this many), tokens.
    flash_bytes, kv_cache_bytes, activation_bytes : int
        Bytes.
    macs : int
        Multiply-accumulates per token.
    latency_s, energy_j : float
        Per token, seconds and joules.
    fits_flash, fits_sram : bool
        Whether the weights fit the flash and KV cache + activations the SRAM.
    """

    mcu: str
    context: int
    flash_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    macs: int
    latency_s: float
    energy_j: float
    fits_flash: bool
    fits_sram: bool

    @property
    def ram_bytes(self) -> int:
        return self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.fits_flash and self.fits_sram

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.latency_s


def _architecture_of(lm: OurLanguageModel | LmArchitecture) -> LmArchitecture:
    if isinstance(lm, LmArchitecture):
        return lm
    if isinstance(lm, OurLanguageModel):
        return lm.architecture
    raise ValueError(
        f"MCU costing needs one of tinylarge's transformer LMs (or its LmArchitecture), got "
        f"{type(lm).__name__}"
    )


def lm_mcu_cost(
    lm: OurLanguageModel | LmArchitecture, mcu: str | McuProfile, context: int = 128
) -> LmMcuCost:
    """Flash, RAM, MACs, latency and energy per token of ``lm`` on ``mcu`` at ``context``.

    Parameters
    ----------
    lm : OurLanguageModel or LmArchitecture
    mcu : str or McuProfile
        A profile name of `MCU_PROFILES` or a profile.
    context : int
        Tokens in the KV cache, 1..the model's context.
    """
    architecture = _architecture_of(lm)
    name, profile = (mcu, mcu_profile(mcu)) if isinstance(mcu, str) else ("custom", mcu)
    macs = macs_per_token(architecture, context)
    latency = macs * profile.cycles_per_mac / profile.clock_hz
    flash = lm_flash_bytes(architecture)
    kv, work = lm_kv_cache_bytes(architecture, context), lm_activation_bytes(architecture, context)
    return LmMcuCost(
        mcu=name, context=context, flash_bytes=flash, kv_cache_bytes=kv, activation_bytes=work,
        macs=macs, latency_s=latency, energy_j=latency * profile.active_power_w,
        fits_flash=flash <= profile.flash_bytes, fits_sram=kv + work <= profile.sram_bytes,
    )  # fmt: skip


def lm_mcu_table(
    lm: OurLanguageModel | LmArchitecture, context: int = 128, mcus: list[str] | None = None
) -> list[LmMcuCost]:
    """`lm_mcu_cost` on every built-in board (or ``mcus``), in `MCU_PROFILES` order."""
    return [lm_mcu_cost(lm, name, context) for name in (mcus or list(MCU_PROFILES))]
