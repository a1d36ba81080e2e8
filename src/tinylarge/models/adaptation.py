"""Adapting the pretrained RF foundation model to a task: linear probe, LoRA, full fine-tuning.

Three methods, the ones the wireless foundation models compare (LWM, arXiv 2411.08872;
SpectrumFM, arXiv 2505.06256; IQFM, arXiv 2506.06718):

- ``probe``: the encoder stays frozen; only the heads learn, on pooled features computed once;
- ``lora``: low-rank adapters on the encoder's linear layers (`tinylarge.models.lora`, ``peft``)
  plus the heads; merged into the weights at the end;
- ``full``: every weight the task uses learns.

Two heads: modulation class (cross-entropy) and SNR in dB. In ``lora`` and ``full`` they learn
together in one forward pass (Huber loss on dB / 10, weighted by ``snr_loss_weight``, beside the
cross-entropy); the probe fits the SNR head in closed form (`fit_snr_head`). All three methods
train through `tinylarge.models.training.train` (Adam, schedule, validation split, early
stopping on the class loss, progress), and all return a plain `RfTransformer` in eval mode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tinylarge.config.training_config import TrainingSpec
from tinylarge.models.lora import LORA_HEADS, attach_lora, merge_lora, resolve_lora_targets
from tinylarge.models.rf_transformer import RfTransformer
from tinylarge.models.training import BatchLoss, ProgressCallback, TrainingReport, train
from tinylarge.seeding import derive_seed

AdaptationMethod = Literal["probe", "lora", "full"]
ADAPTATION_METHODS: tuple[str, ...] = get_args(AdaptationMethod)

#: The SNR loss works on dB / this (a 10 dB error is 1): the Huber loss is quadratic below it.
SNR_SCALE_DB = 10.0


@dataclass(frozen=True)
class AdaptationSettings:
    """How to adapt: the method, its LoRA hyper-parameters and the weight of the SNR head.

    Attributes
    ----------
    method : {"probe", "lora", "full"}
        What trains: the heads only, low-rank adapters plus heads, or everything.
    lora_rank : int
        LoRA rank ``r`` (>= 1).
    lora_alpha : float
        LoRA scale numerator (> 0): the update is ``(alpha / r) B A``.
    lora_dropout : float
        Dropout on the adapters' input while training, in [0, 1).
    lora_targets : tuple of str
        Linear layers that get adapters, by name (see `tinylarge.models.lora.resolve_lora_targets`:
        ``"proj"`` is the patch embedding and every attention output projection).
    snr_loss_weight : float
        Weight (>= 0) of the SNR head's Huber loss (on dB / 10) beside the class cross-entropy;
        0 trains the class head only (the probe fits its SNR head whenever the weight is > 0).
    probe_epochs : int
        Epochs of the probe (replaces ``spec.epochs`` for ``probe``): its epochs run on cached
        features and cost milliseconds, so it affords many.
    """

    method: AdaptationMethod = "full"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("qkv", "proj", "fc1", "fc2")
    snr_loss_weight: float = 0.1
    probe_epochs: int = 100

    def __post_init__(self) -> None:
        problems = []
        if self.method not in ADAPTATION_METHODS:
            problems.append(f"method {self.method!r} is not one of {', '.join(ADAPTATION_METHODS)}")
        if self.lora_rank < 1:
            problems.append(f"lora_rank must be >= 1, got {self.lora_rank}")
        if not self.lora_alpha > 0:
            problems.append(f"lora_alpha must be > 0, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_targets:
            problems.append("lora_targets must name at least one layer (e.g. 'qkv', 'fc1')")
        if not self.snr_loss_weight >= 0:
            problems.append(f"snr_loss_weight must be >= 0, got {self.snr_loss_weight}")
        if self.probe_epochs < 1:
            problems.append(f"probe_epochs must be >= 1, got {self.probe_epochs}")
        if problems:
            raise ValueError("bad adaptation settings: " + "; ".join(problems))


@dataclass(frozen=True)
class AdaptationResult:
    """An adapted model and how it was trained.

    Attributes
    ----------
    model : RfTransformer
        A plain model again (LoRA merged), in eval mode; a new object, the input is untouched.
    report : TrainingReport
        The training history (for ``probe``: of the heads on cached features).
    trainable_parameters : int
        Parameters the method trained: heads (probe); adapters and heads (lora); every
        parameter of the task's forward pass (full: all but the pretraining-only
        ``reconstruction`` head and mask token).
    total_parameters : int
        Parameters of ``model``.
    """

    model: RfTransformer
    report: TrainingReport
    trainable_parameters: int
    total_parameters: int

    @property
    def trainable_fraction(self) -> float:
        """Trained share of the parameters."""
        return self.trainable_parameters / self.total_parameters


class _EncoderHeads(nn.Module):
    """``forward`` gives the class logits (what `train` needs); the SNR estimate (dB) of the
    same pass waits in ``last_snr_db`` for the loss."""

    def __init__(self, model: RfTransformer) -> None:
        super().__init__()
        self.model = model
        self.last_snr_db: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        logits, self.last_snr_db = self.model.forward_heads(x)
        return logits


def _heads_loss(
    module: _EncoderHeads, snr_db: npt.NDArray[np.floating] | None, weight: float
) -> BatchLoss:
    """The `train` loss of both heads: cross-entropy + ``weight`` x Huber(SNR / 10 dB).

    ``snr_db`` is indexed by the batch's sample indices; None (or ``weight`` 0) leaves the
    cross-entropy alone.
    """
    target = (
        None
        if snr_db is None or weight == 0
        else torch.from_numpy(np.asarray(snr_db, dtype=np.float32) / SNR_SCALE_DB)
    )

    def loss(logits: Tensor, y: Tensor, idx: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, y)
        if target is None:
            return ce
        assert module.last_snr_db is not None
        return ce + weight * F.huber_loss(module.last_snr_db / SNR_SCALE_DB, target[idx])

    return loss


def snr_rmse_db(pred_db: npt.ArrayLike, true_db: npt.ArrayLike) -> float:
    """Root-mean-square error of SNR estimates, dB."""
    pred, true = np.asarray(pred_db, np.float64), np.asarray(true_db, np.float64)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(
            f"snr_rmse_db needs two equal, non-empty shapes; got {pred.shape}, {true.shape}"
        )
    return float(np.sqrt(np.mean((pred - true) ** 2)))


@torch.inference_mode()
def pooled_features(
    model: RfTransformer, x: npt.NDArray[np.float32], batch_size: int = 1024
) -> npt.NDArray[np.float32]:
    """The frozen encoder's pooled features ``(n, width)`` of frames ``x`` ``(n, 2, L)``."""
    model.eval()
    out = [
        model.features(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], np.float32)))
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.width), np.float32)


@torch.inference_mode()
def predict_heads(
    model: RfTransformer, x: npt.NDArray[np.float32], batch_size: int = 1024
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Class logits ``(n, classes)`` float32 and SNR estimates ``(n,)`` in dB of frames ``x``."""
    model.eval()
    logits, snr = [], []
    for i in range(0, len(x), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], np.float32))
        lo, sn = model.forward_heads(chunk)
        logits.append(lo.numpy())
        snr.append(sn.numpy())
    if not logits:
        classes = model.class_head.linear.out_features
        return np.zeros((0, classes), np.float32), np.zeros(0, np.float32)
    return np.concatenate(logits).astype(np.float32), np.concatenate(snr).astype(np.float32)


def fit_snr_head(
    model: RfTransformer,
    features: npt.NDArray[np.float32],
    snr_db: npt.ArrayLike,
    l2: float = 1e-3,
) -> None:
    """Set the SNR head to the ridge regression of ``snr_db`` on ``features`` (the probe's SNR
    head, in closed form).

    Pooled, normalised features vary little along the directions that carry the SNR (the
    least-squares problem is ill-conditioned), so gradient steps move a linear head towards
    its optimum slowly and noisily; the regularised normal equations give it at once.

    Parameters
    ----------
    model : RfTransformer
        Its ``snr_head`` is overwritten.
    features : ndarray, shape (n, width)
        Pooled features (`pooled_features`) of the frames.
    snr_db : array_like, shape (n,)
        Their SNR, dB.
    l2 : float
        Ridge penalty relative to the mean feature variance (keeps the solve well posed).
    """
    f = np.asarray(features, np.float64)
    target = np.asarray(snr_db, np.float64)
    mean_f, mean_t = f.mean(axis=0), float(target.mean())
    centred = f - mean_f
    gram = centred.T @ centred
    ridge = l2 * max(float(np.trace(gram)) / len(gram), 1e-12)
    weight = np.linalg.solve(gram + ridge * np.eye(len(gram)), centred.T @ (target - mean_t))
    with torch.no_grad():
        model.snr_head.weight.copy_(torch.from_numpy(weight[None, :]))
        model.snr_head.bias.fill_(mean_t - float(mean_f @ weight))


def probe_training_spec(
    spec: TrainingSpec, n_frames: int, num_classes: int, epochs: int
) -> TrainingSpec:
    """The probe's recipe from ``spec``: ``epochs`` epochs, patience at least a tenth of them,
    and no validation split when it would hold fewer than two frames per class (with a few
    labels per class, early stopping on a handful of frames is noise and costs labels: the
    probe then trains on all of them for ``epochs`` epochs)."""
    n = n_frames if spec.max_train_samples is None else min(n_frames, spec.max_train_samples)
    val_fraction = spec.val_fraction if round(n * spec.val_fraction) >= 2 * num_classes else 0.0
    patience = max(spec.patience_epochs, epochs // 10) if spec.patience_epochs else 0
    return spec.model_copy(
        update={"epochs": epochs, "val_fraction": val_fraction, "patience_epochs": patience}
    )


def _count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _trains_snr(snr_db: npt.NDArray[np.floating] | None, settings: AdaptationSettings) -> bool:
    """Whether the SNR head learns: there are SNR targets and their loss has weight."""
    return snr_db is not None and settings.snr_loss_weight > 0


def _probe(
    model: RfTransformer,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.floating] | None,
    spec: TrainingSpec,
    settings: AdaptationSettings,
    seed: int,
    progress: ProgressCallback | None,
) -> tuple[RfTransformer, TrainingReport, int]:
    """Heads on cached features: the class head by `train`, the SNR head by ridge regression."""
    features = pooled_features(model, x, batch_size=max(spec.batch_size, 1024))
    trained = 0
    if _trains_snr(snr_db, settings):
        fit_snr_head(model, features, np.asarray(snr_db))
        trained += _count(model.snr_head)
    head = copy.deepcopy(model.class_head.linear)
    probe_spec = probe_training_spec(spec, len(x), head.out_features, settings.probe_epochs)
    report = train(head, features, y, probe_spec, seed=seed, progress=progress)
    model.class_head.linear.load_state_dict(head.state_dict())
    return model, report, trained + _count(head)


def _lora(
    model: RfTransformer,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.floating] | None,
    spec: TrainingSpec,
    settings: AdaptationSettings,
    seed: int,
    progress: ProgressCallback | None,
) -> tuple[RfTransformer, TrainingReport, int]:
    """Attach adapters, train adapters and heads, merge."""
    peft_model = attach_lora(
        model,
        rank=settings.lora_rank,
        alpha=settings.lora_alpha,
        dropout=settings.lora_dropout,
        targets=settings.lora_targets,
        heads=LORA_HEADS if _trains_snr(snr_db, settings) else LORA_HEADS[:1],
    )
    trainable = _count_trainable(peft_model)
    report = fit_heads(peft_model.get_base_model(), x, y, snr_db, spec, settings, seed, progress)
    return merge_lora(peft_model), report, trainable


def _full(
    model: RfTransformer,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.floating] | None,
    spec: TrainingSpec,
    settings: AdaptationSettings,
    seed: int,
    progress: ProgressCallback | None,
) -> tuple[RfTransformer, TrainingReport, int]:
    """Train every parameter of the task's forward pass."""
    model.reconstruction.requires_grad_(False)  # pretraining only: no gradient reaches them
    model.embedding.mask_token.requires_grad_(False)
    model.snr_head.requires_grad_(_trains_snr(snr_db, settings))
    trainable = _count_trainable(model)
    report = fit_heads(model, x, y, snr_db, spec, settings, seed, progress)
    return model, report, trainable


def fit_heads(
    model: nn.Module,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.floating] | None,
    spec: TrainingSpec,
    settings: AdaptationSettings,
    seed: int,
    progress: ProgressCallback | None = None,
) -> TrainingReport:
    """Train ``model``'s trainable parameters (``requires_grad``) on both heads with `train`.

    ``model`` is an `RfTransformer`, possibly with ``peft`` adapters injected (``lora``);
    trains it in place and leaves it in eval mode.
    """
    if not isinstance(model, RfTransformer):
        raise TypeError(f"fit_heads needs an RfTransformer, got {type(model).__name__}")
    wrapper = _EncoderHeads(model)
    loss = _heads_loss(wrapper, snr_db, settings.snr_loss_weight)
    report = train(wrapper, x, y, spec, seed=seed, progress=progress, loss_fn=loss)
    wrapper.last_snr_db = None
    return report


_METHODS: dict[str, Callable[..., tuple[RfTransformer, TrainingReport, int]]] = {
    "probe": _probe,
    "lora": _lora,
    "full": _full,
}


def _check_inputs(
    model: RfTransformer,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.floating] | None,
    settings: AdaptationSettings,
) -> None:
    if not isinstance(model, RfTransformer):
        raise TypeError(f"adapt needs an RfTransformer, got {type(model).__name__}")
    if x.ndim != 3 or x.shape[1] != 2 or y.shape != (len(x),):
        raise ValueError(f"adapt needs x (n, 2, samples) and y (n,), got {x.shape} and {y.shape}")
    if snr_db is not None and np.shape(snr_db) != (len(x),):
        raise ValueError(f"snr_db must have shape ({len(x)},) like y, got {np.shape(snr_db)}")
    classes = model.class_head.linear.out_features
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"labels must be in [0, {classes}), got {y.min()}..{y.max()}")
    if settings.method == "lora":
        resolve_lora_targets(model, settings.lora_targets)


def adapt(
    model: RfTransformer,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    snr_db: npt.NDArray[np.floating] | None,
    spec: TrainingSpec,
    settings: AdaptationSettings,
    *,
    seed: int,
    progress: ProgressCallback | None = None,
) -> AdaptationResult:
    """Adapt a (pretrained) RF transformer to a labelled task; ``model`` itself is not changed.

    Parameters
    ----------
    model : RfTransformer
        The pretrained model; its class head must have as many outputs as the task has classes.
    x : ndarray, float32, shape (n, 2, samples)
        Labelled IQ frames.
    y : ndarray, int64, shape (n,)
        Class labels.
    snr_db : ndarray, shape (n,), or None
        SNR of each frame in dB, the SNR head's target; None trains the class head only (the
        SNR head then keeps its initial weights).
    spec : TrainingSpec
        The training recipe (`train`); the probe derives its own from it
        (`probe_training_spec`).
    settings : AdaptationSettings
        Method and its hyper-parameters.
    seed : int
        Seeds the split, batch order, adapter initialisation and dropout (global torch random
        state is restored afterwards).
    progress : callable, optional
        Called after every batch (`tinylarge.models.training.ProgressCallback`).

    Returns
    -------
    AdaptationResult
    """
    _check_inputs(model, x, y, snr_db, settings)
    model = copy.deepcopy(model)
    if snr_db is not None and _trains_snr(snr_db, settings) and settings.method != "probe":
        with torch.no_grad():  # the SNR head starts as the mean SNR
            model.snr_head.weight.zero_()
            model.snr_head.bias.fill_(float(np.mean(snr_db)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "adapt", settings.method))
        adapted, report, trainable = _METHODS[settings.method](
            model, x, y, snr_db, spec, settings, seed, progress
        )
    adapted.requires_grad_(True).eval()
    return AdaptationResult(
        model=adapted,
        report=report,
        trainable_parameters=trainable,
        total_parameters=sum(p.numel() for p in adapted.parameters()),
    )


__all__ = [
    "ADAPTATION_METHODS",
    "SNR_SCALE_DB",
    "AdaptationMethod",
    "AdaptationResult",
    "AdaptationSettings",
    "adapt",
    "fit_heads",
    "fit_snr_head",
    "pooled_features",
    "predict_heads",
    "probe_training_spec",
    "snr_rmse_db",
]
