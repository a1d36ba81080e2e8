"""Split computing (Neurosurgeon-style) on a partitionable `BlockModel`.

The device runs blocks ``[0, k)`` of the large model, quantizes the activation and sends it; the
edge dequantizes it and runs blocks ``[k, n)`` and the head (Kang et al., "Neurosurgeon:
Collaborative Intelligence Between the Cloud and Mobile Edge", ASPLOS 2017). Split points are
``k = 0 .. n_blocks``: ``k = 0`` sends the (quantized) raw input, ``k = n_blocks`` the last
block's output (the head, global pooling + linear, always runs at the edge).

Activation quantization: uniform, per-tensor, asymmetric, with the range taken per *sample*:
``lo = min(h)``, ``hi = max(h)``, ``scale = (hi - lo) / (2**bits - 1)``,
``q = round((h - lo) / scale)`` in ``[0, 2**bits - 1]``, dequantized as ``lo + q * scale``
(a constant sample is sent exactly with ``scale = 1``). ``bits`` is 2..16. On air a sample is
``ceil(elements x bits / 8)`` payload bytes plus `QUANT_HEADER_BYTES` (a float32 scale and a
float32 offset ``lo``).

Device MACs count conv and linear layers (``conv`` = output elements x C_in / groups x
prod(kernel); ``linear`` = in x out per row), the convention of `tinylarge.tiny.footprint`,
whose cycles/MAC figures already contain the cost of batch norm, ReLU, pooling and additions;
and the two products of every scaled dot-product attention a transformer runs
(`torch.nn.functional.scaled_dot_product_attention`): ``Q K^T`` and ``softmax(.) V``, i.e.
``heads x L x S x (E + E_v)`` for ``L`` queries, ``S`` keys, key width ``E`` and value width
``E_v`` per head (for self-attention over ``T`` tokens of width ``d``: ``2 T^2 d`` per layer).
Softmax, layer norm and GELU are left out like batch norm and ReLU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from tinylarge.integrate.inference.contract import Decision, Policy, Trace, check_request
from tinylarge.models.blocks import BlockModel
from tinylarge.net.mean_rate import MeanRateLink

#: Per-sample header on air, bytes: float32 scale (4 B) + float32 offset ``lo`` (4 B).
QUANT_HEADER_BYTES = 4 + 4
#: Allowed activation bit widths.
MIN_BITS, MAX_BITS = 2, 16
#: Layers that carry MACs but are not counted by `device_macs_per_block`.
_UNSUPPORTED = (
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.MultiheadAttention,
    nn.RNNBase,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def split_logits_key(k: int) -> str:
    """Key of split point ``k``'s test-set logits in ``Trace.extra``: ``"split_logits_k<k>"``."""
    return f"split_logits_k{k}"


def _check_bits(bits: int) -> None:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits}")


def _check_k(model: BlockModel, k: int) -> None:
    if not 0 <= k <= len(model.blocks):
        raise ValueError(f"split point k must be in 0..{len(model.blocks)} (blocks), got {k}")


def quantize_activation(h: Tensor, bits: int) -> Tensor:
    """Quantize to ``bits`` bits and dequantize (per-sample asymmetric min/max, see module doc).

    Parameters
    ----------
    h : Tensor, shape (batch, ...)
        Activations (any float dtype).
    bits : int
        2..16.

    Returns
    -------
    Tensor, same shape and dtype as ``h``
    """
    _check_bits(bits)
    flat = h.detach().reshape(h.shape[0], -1).double()
    lo = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - lo
    scale = torch.where(span > 0, span / (2**bits - 1), torch.ones_like(span))
    q = torch.clamp(torch.round((flat - lo) / scale), 0, 2**bits - 1)
    return (lo + q * scale).reshape(h.shape).to(h.dtype)


def split_outputs(
    model: BlockModel, x: npt.ArrayLike, k: int, bits: int, *, batch_size: int = 512
) -> npt.NDArray[np.float32]:
    """Logits when the device runs blocks ``[0, k)`` and sends a ``bits``-bit activation.

    The model runs in eval mode (its training flag is restored afterwards), without gradients.

    Parameters
    ----------
    model : BlockModel
        The partitionable large model.
    x : array_like, shape (n, *input_shape)
        Input samples (float).
    k : int
        Split point, 0..n_blocks.
    bits : int
        Activation bit width, 2..16.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    ndarray of float32, shape (n, num_classes)
    """
    _check_k(model, k)
    _check_bits(bits)
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [
                model.forward_from(quantize_activation(model.forward_until(xb, k), bits), k)
                for xb in torch.split(inputs, batch_size)
            ]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32)


def split_logits_extra(
    model: BlockModel, x: npt.ArrayLike, bits: int, *, batch_size: int = 512
) -> dict[str, npt.NDArray[np.float32]]:
    """`split_outputs` for every ``k = 0..n_blocks``, keyed by `split_logits_key` for a `Trace`."""
    return {
        split_logits_key(k): split_outputs(model, x, k, bits, batch_size=batch_size)
        for k in range(len(model.blocks) + 1)
    }


def _probe(model: BlockModel, input_shape: tuple[int, ...]) -> Tensor:
    return torch.zeros((1, *input_shape), dtype=next(model.parameters()).dtype)


def activation_shapes(model: BlockModel, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shape (without batch) of what is sent at each split point ``k = 0..n_blocks``."""
    was_training = model.training
    model.eval()
    shapes = [tuple(input_shape)]
    try:
        with torch.no_grad():
            h = _probe(model, input_shape)
            for block in model.blocks:
                h = block(h)
                shapes.append(tuple(int(d) for d in h.shape[1:]))
    finally:
        model.train(was_training)
    return shapes


def activation_bytes_per_split(
    model: BlockModel, input_shape: tuple[int, ...], bits: int
) -> IntArray:
    """Bytes on air per sample at every split point: ``ceil(elements x bits / 8) + header``.

    Returns
    -------
    ndarray of int64, shape (n_blocks + 1,)
        Entry ``k`` is the activation sent at split point ``k`` (entry 0: the raw input).
    """
    _check_bits(bits)
    sizes = [math.prod(s) for s in activation_shapes(model, input_shape)]
    return np.array([math.ceil(e * bits / 8) + QUANT_HEADER_BYTES for e in sizes], dtype=np.int64)


def activation_bytes(model: BlockModel, input_shape: tuple[int, ...], k: int, bits: int) -> int:
    """Bytes on air per sample at split point ``k`` (see `activation_bytes_per_split`)."""
    _check_k(model, k)
    return int(activation_bytes_per_split(model, input_shape, bits)[k])


def _layer_macs(layer: nn.Module, out: Tensor) -> int:
    if isinstance(layer, nn.Conv1d | nn.Conv2d):
        per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        return out[0].numel() * per_output
    if isinstance(layer, nn.Linear):
        return out[0].numel() * layer.in_features
    return 0


def _check_countable(module: nn.Module) -> None:
    for name, layer in module.named_modules():
        if isinstance(layer, _UNSUPPORTED):
            raise ValueError(
                f"layer {name!r} is {type(layer).__name__}; MACs are counted for Conv1d, Conv2d, "
                "Linear and scaled_dot_product_attention only"
            )


def attention_product_macs(query: Tensor, key: Tensor, value: Tensor) -> int:
    """MACs of ``Q K^T`` and ``softmax(.) V`` in one scaled dot-product attention call.

    Parameters
    ----------
    query, key, value : Tensor, shapes (..., L, E), (..., S, E), (..., S, E_v)
        The call's arguments; every leading dimension (batch, heads) multiplies the count.

    Returns
    -------
    int
        ``prod(leading dims of query) x L x S x (E + E_v)``.
    """
    *lead, queries, width = query.shape
    keys, value_width = key.shape[-2], value.shape[-1]
    return math.prod(lead) * queries * keys * (width + value_width)


class _AttentionCounter(TorchFunctionMode):
    """Adds up `attention_product_macs` of every scaled dot-product attention run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(
        self,
        func: object,
        types: object,
        args: tuple[object, ...] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = (*args, *(kwargs[n] for n in ("query", "key", "value") if n in kwargs))[:3]
            assert isinstance(q, Tensor) and isinstance(k, Tensor) and isinstance(v, Tensor)
            self.macs += attention_product_macs(q, k, v)
        return func(*args, **kwargs)  # type: ignore[operator]


def module_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of ``module`` for one sample of shape ``input_shape``, counted with forward hooks
    on conv1d/conv2d/linear layers plus the products of every scaled dot-product attention
    (see the module doc); the module runs once in eval mode.

    Raises
    ------
    ValueError
        If the module holds a MAC-bearing layer that is not counted (3-D or transposed conv,
        attention, recurrent layers).
    """
    _check_countable(module)
    count = 0
    handles = []
    for layer in module.modules():

        def hook(layer: nn.Module, inputs: object, out: Tensor) -> None:
            nonlocal count
            count += _layer_macs(layer, out)

        handles.append(layer.register_forward_hook(hook))
    was_training = module.training
    module.eval()
    attention = _AttentionCounter()
    try:
        with torch.no_grad(), attention:
            dtype = next(iter(module.parameters()), torch.zeros(0)).dtype
            module(torch.zeros((1, *input_shape), dtype=dtype))
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return count + attention.macs


def device_macs_per_block(model: BlockModel, input_shape: tuple[int, ...]) -> IntArray:
    """MACs of each block for one sample (`module_macs` of every block on its input).

    Returns
    -------
    ndarray of int64, shape (n_blocks,)
    """
    for i, block in enumerate(model.blocks):
        try:
            _check_countable(block)
        except ValueError as error:
            raise ValueError(f"block {i}: {error}") from None
    shapes = activation_shapes(model, input_shape)
    counts = [module_macs(block, shapes[i]) for i, block in enumerate(model.blocks)]
    return np.array(counts, dtype=np.int64)


def cumulative_macs(macs_per_block: npt.ArrayLike) -> IntArray:
    """Device MACs at each split point: entry ``k`` = MACs of blocks ``[0, k)``, shape (n+1,)."""
    per_block = np.asarray(macs_per_block, dtype=np.int64)
    return np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(per_block)])


def choose_split(
    link: MeanRateLink,
    *,
    device_macs_cum: npt.ArrayLike,
    activation_bytes: npt.ArrayLike,
    mcu_cycles_per_mac: float,
    mcu_clock_hz: float,
    mcu_power_w: float,
    objective: Literal["latency", "energy"] = "latency",
    energy_budget_j: npt.ArrayLike | None = None,
) -> IntArray:
    """Pick each device's split point, minimising device compute + upload latency or energy.

    For device ``d`` and split ``k``: compute time ``t_c = macs[k] x cycles_per_mac / clock``;
    the upload of ``bytes[k]`` at the device's mean uplink rate takes whole slots and costs the
    radio's TX draw over them (``link.send``, `tinylarge.net.mean_rate`, as the network charges
    it: a smaller activation only pays when it saves a slot); latency = ``t_c`` + upload time,
    energy = ``power x t_c`` + upload energy. Edge compute and queueing are not part of the
    choice. With a budget, only splits whose energy fits it are eligible; a device for which
    none fits gets its least-energy split. A device with uplink rate 0 gets the split that
    sends fewest bytes. Ties go to the smaller ``k``.

    Parameters
    ----------
    link : MeanRateLink
        Every device's mean-rate link (its uplink rate, the slot and the TX draw are used).
    device_macs_cum : array_like, shape (K,)
        Device MACs at each split point (see `cumulative_macs`).
    activation_bytes : array_like, shape (K,)
        Bytes sent at each split point (see `activation_bytes_per_split`).
    mcu_cycles_per_mac, mcu_clock_hz, mcu_power_w : float
        The device MCU: cycles per MAC, clock (Hz), active power (W).
    objective : {"latency", "energy"}
        What to minimise.
    energy_budget_j : float or array_like, shape (n_devices,), optional
        Per-inference device energy budget, J.

    Returns
    -------
    ndarray of int64, shape (n_devices,)
    """
    if objective not in ("latency", "energy"):
        raise ValueError(f"objective must be 'latency' or 'energy', got {objective!r}")
    macs = np.asarray(device_macs_cum, dtype=np.float64)
    size = np.asarray(activation_bytes, dtype=np.float64)
    if macs.ndim != 1 or macs.shape != size.shape or macs.size == 0:
        raise ValueError(
            "device_macs_cum and activation_bytes must be 1-D of the same non-zero length; got "
            f"shapes {macs.shape}, {size.shape}"
        )
    if min(mcu_cycles_per_mac, mcu_clock_hz, mcu_power_w) <= 0:
        raise ValueError("mcu_cycles_per_mac, mcu_clock_hz and mcu_power_w must be > 0")
    rate = np.asarray(link.uplink_bps)
    compute_s = macs * mcu_cycles_per_mac / mcu_clock_hz  # (K,)
    upload_s, upload_j = link.send(size[None, :], np.arange(rate.size)[:, None])  # (n, K)
    energy_j = mcu_power_w * compute_s[None, :] + np.where(rate[:, None] > 0, upload_j, 0.0)
    cost = compute_s[None, :] + upload_s if objective == "latency" else energy_j
    if energy_budget_j is not None:
        budget = np.broadcast_to(np.asarray(energy_budget_j, dtype=np.float64), rate.shape)
        fits: npt.NDArray[np.bool_] = energy_j <= budget[:, None]
        feasible = np.any(fits, axis=1, keepdims=True)  # (n, 1); else least energy
        cost = np.where(feasible, np.where(fits, cost, np.inf), energy_j)
    k = np.argmin(cost, axis=1)
    return np.where(rate > 0, k, int(np.argmin(size))).astype(np.int64)


def split_k_distribution(k_per_device: npt.ArrayLike) -> dict[int, int]:
    """Number of devices per chosen split point, ``{k: count}`` sorted by ``k``."""
    values, counts = np.unique(np.asarray(k_per_device, dtype=np.int64), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


class SplitPolicy(Policy):
    """Every request is split: its device runs blocks ``[0, k)`` and sends the activation.

    Parameters
    ----------
    activation_bytes : array_like of int, shape (K,)
        Bytes sent at each split point ``k = 0 .. K - 1`` (`activation_bytes_per_split`).
    device_macs_cum : array_like of int, shape (K,)
        Device MACs at each split point (`cumulative_macs`).
    k_per_device : array_like of int, shape (n_devices,)
        Each device's split point (`choose_split`).
    logits_keys : sequence of str, shape (K,), optional
        ``Trace.extra`` key of the edge's logits for each split point (default
        ``split_logits_key(k)``). Candidates need not be the model's own cuts: a learned
        bottleneck (`tinylarge.models.split_exit`) is one more candidate with its own key.

    Notes
    -----
    The trace must hold the logits (shape (n, C)) of every split point in use
    (`split_logits_extra`). The device runs no classifier, so it has no fallback answer.
    """

    name: ClassVar[str] = "split"

    def __init__(
        self,
        *,
        activation_bytes: npt.ArrayLike,
        device_macs_cum: npt.ArrayLike,
        k_per_device: npt.ArrayLike,
        logits_keys: Sequence[str] | None = None,
    ) -> None:
        self.activation_bytes = np.asarray(activation_bytes, dtype=np.int64)
        self.device_macs_cum = np.asarray(device_macs_cum, dtype=np.int64)
        self.k_per_device = np.asarray(k_per_device, dtype=np.int64)
        n_splits = self.activation_bytes.size
        if self.activation_bytes.ndim != 1 or self.device_macs_cum.shape != (n_splits,):
            raise ValueError(
                "activation_bytes and device_macs_cum must be 1-D of the same length K; got "
                f"shapes {self.activation_bytes.shape}, {self.device_macs_cum.shape}"
            )
        if (self.activation_bytes < 0).any() or (self.device_macs_cum < 0).any():
            raise ValueError("activation_bytes and device_macs_cum must be >= 0")
        self.logits_keys = (
            [split_logits_key(k) for k in range(n_splits)]
            if logits_keys is None
            else [str(key) for key in logits_keys]
        )
        if len(self.logits_keys) != n_splits:
            raise ValueError(
                f"logits_keys must name one trace key per split point ({n_splits}); got "
                f"{len(self.logits_keys)}"
            )
        k = self.k_per_device
        if k.ndim != 1 or k.size == 0 or k.min() < 0 or k.max() >= n_splits:
            raise ValueError(
                f"k_per_device must be a non-empty 1-D array of split points in 0..{n_splits - 1}"
            )

    def decide(
        self,
        trace: Trace,
        index: npt.ArrayLike,
        rng: np.random.Generator,
        device: npt.ArrayLike | None = None,
    ) -> Decision:
        """Offload every request at its device's split point (see `Policy.decide`).

        Parameters
        ----------
        device : array_like of int, shape (m,), optional
            Device of each request, in ``[0, n_devices)``. May be omitted only when every
            device has the same split point.
        """
        idx = check_request(trace, index, rng)
        if device is None:
            if np.unique(self.k_per_device).size != 1:
                raise ValueError("devices have different split points: pass device=(m,) array")
            k = np.full(idx.shape, self.k_per_device[0], dtype=np.int64)
        else:
            dev = np.asarray(device, dtype=np.int64)
            if dev.shape != idx.shape or (
                dev.size and not 0 <= dev.min() <= dev.max() < len(self.k_per_device)
            ):
                raise ValueError(
                    f"device must have shape {idx.shape} with values in "
                    f"[0, {len(self.k_per_device)})"
                )
            k = self.k_per_device[dev]
        prediction = np.empty(idx.shape, dtype=np.int64)
        for split in np.unique(k):
            logits = trace.require(self.logits_keys[int(split)], "split policy predictions")
            rows = k == split
            prediction[rows] = np.argmax(logits[idx[rows]], axis=1)
        return Decision.all_offloaded(
            prediction, bytes_up=self.activation_bytes[k], device_macs=self.device_macs_cum[k]
        )
