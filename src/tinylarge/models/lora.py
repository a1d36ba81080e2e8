"""LoRA adapters on the RF transformer's linear layers, through Hugging Face ``peft``.

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022,
arXiv 2106.09685) freezes a pretrained weight ``W`` (``out x in``) and learns a low-rank update
``(alpha / r) B A`` with ``A`` (``r x in``) and ``B`` (``out x r``, zero at the start), so a
fine-tuned copy costs ``r (in + out)`` parameters per adapted layer. ``peft``
(https://huggingface.co/docs/peft) injects the adapters into a plain ``nn.Module``; after
training, `merge_lora` folds ``B A`` into ``W`` and gives back an ordinary `RfTransformer`
(same class, same forward, exportable to ONNX, still a `BlockModel` for split computing).

``peft`` imports ``transformers`` (several seconds), so it is imported only inside
`attach_lora` and `merge_lora`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from tinylarge.models.rf_transformer import RfTransformer

if TYPE_CHECKING:
    from peft import PeftModel

#: The task heads that train beside the adapters (peft ``modules_to_save``): class logits and
#: SNR estimate. Their frozen originals stay in place until `merge_lora` swaps the copies in.
LORA_HEADS: tuple[str, ...] = ("head.linear", "snr_head")


def adaptable_linear_names(model: RfTransformer) -> list[str]:
    """Qualified names of the `nn.Linear` layers of ``model.blocks`` (patch embedding and
    encoder layers), the layers a LoRA target may name; the heads are not among them."""
    return [
        f"blocks.{name}"
        for name, module in model.blocks.named_modules()
        if type(module) is nn.Linear
    ]


def resolve_lora_targets(model: RfTransformer, targets: Sequence[str]) -> list[str]:
    """Qualified names of the layers that ``targets`` select.

    A target selects every adaptable layer whose qualified name is the target or ends with
    ``"." + target`` (``peft``'s rule): ``"proj"`` selects the patch embedding's ``blocks.0.proj``
    and every attention output ``attn.proj``; ``"attn.proj"`` only the latter.

    Raises
    ------
    ValueError
        If ``targets`` is empty or a target selects no layer (the message lists the names).
    """
    names = adaptable_linear_names(model)
    if not targets:
        raise ValueError(f"lora_targets is empty; name some of: {_short_names(names)}")
    chosen: list[str] = []
    for target in targets:
        matched = [n for n in names if n == target or n.endswith(f".{target}")]
        if not matched:
            raise ValueError(
                f"lora target {target!r} matches no linear layer of the encoder; available: "
                f"{_short_names(names)} (or a dotted suffix such as 'attn.proj')"
            )
        chosen += [n for n in matched if n not in chosen]
    return chosen


def _short_names(names: Sequence[str]) -> str:
    return ", ".join(sorted({n.rsplit(".", 1)[-1] for n in names}))


def lora_parameter_count(model: RfTransformer, targets: Sequence[str], rank: int) -> int:
    """Adapter parameters that `attach_lora` adds: ``rank (in + out)`` per selected layer."""
    layers = dict(model.named_modules())
    total = 0
    for name in resolve_lora_targets(model, targets):
        layer = layers[name]
        assert isinstance(layer, nn.Linear)
        total += rank * (layer.in_features + layer.out_features)
    return total


def attach_lora(
    model: RfTransformer,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    targets: Sequence[str],
    heads: Sequence[str] = LORA_HEADS,
) -> PeftModel:
    """Inject LoRA adapters into ``model`` (in place) and freeze everything else but the heads.

    Parameters
    ----------
    model : RfTransformer
        Modified in place: the selected layers become ``peft`` LoRA layers and the ``heads``
        become trainable copies; every other parameter is frozen.
    rank : int
        Adapter rank ``r`` (>= 1).
    alpha : float
        LoRA scaling numerator: the update is ``(alpha / rank) B A``.
    dropout : float
        Dropout on the adapter input while training, in [0, 1).
    targets : sequence of str
        Layer names (see `resolve_lora_targets`).
    heads : sequence of str
        Head modules that train too (``peft`` ``modules_to_save``), by qualified name.

    Returns
    -------
    peft.PeftModel
        Wraps ``model``; ``.get_base_model()`` is ``model`` itself, and its trainable
        parameters are the adapters and the head copies.
    """
    names = resolve_lora_targets(model, targets)
    from peft import LoraConfig, get_peft_model  # slow import: LoRA only

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # annotated int; the scale is alpha / r
        lora_dropout=dropout,
        target_modules=names,
        modules_to_save=list(heads),
    )
    return get_peft_model(model, config)


def merge_lora(peft_model: PeftModel) -> RfTransformer:
    """Fold the adapters into the base weights and swap the trained head copies in
    (``merge_and_unload``): a plain `RfTransformer` with no ``peft`` module left."""
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, RfTransformer):
        raise TypeError(f"merge_and_unload gave a {type(merged).__name__}, not an RfTransformer")
    return merged


__all__ = [
    "LORA_HEADS",
    "adaptable_linear_names",
    "attach_lora",
    "lora_parameter_count",
    "merge_lora",
    "resolve_lora_targets",
]
