"""Options of the training loop, shared by every section that trains something."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinylarge.config.base import Section


class TrainingSpec(Section):
    """Options of the training loop (`tinylarge.models.train`)."""

    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=1_000_000)
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size_epochs: int = Field(10, ge=1, description="epochs between decays ('step' only)")
    step_gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor ('step' only)")
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of training data held out for validation"
    )
    patience_epochs: int = Field(
        5,
        ge=0,
        description="stop after this many epochs without a lower validation loss; 0: never",
    )
    max_train_samples: int | None = Field(
        None, ge=1, description="train on at most this many samples (None: all)"
    )


class AdaptationSpec(Section):
    """How a pretrained large model is adapted to the task (`tinylarge.models.adaptation`).

    ``full`` trains every weight; ``lora`` trains low-rank adapters on the attention and MLP
    projections plus the heads (Hu et al., "LoRA", ICLR 2022, with Hugging Face PEFT);
    ``probe`` trains only the heads on frozen features; ``none`` uses the model as it is
    (required for an ONNX file). A model trained from scratch (``large_resnet``) takes
    ``full`` only.
    """

    method: Literal["full", "lora", "probe", "none"] = "full"
    lora_rank: int = Field(8, ge=1, le=1024)
    lora_alpha: float = Field(16.0, gt=0.0, le=1e4)
    snr_loss_weight: float = Field(
        0.1, ge=0.0, le=100.0,
        description="weight of the SNR head's loss beside cross-entropy (0: no SNR head)",
    )  # fmt: skip


class LargeTrainingSpec(TrainingSpec):
    """Training of the large model: the loop's options plus how a pretrained model adapts."""

    adaptation: AdaptationSpec = Field(default_factory=AdaptationSpec)
