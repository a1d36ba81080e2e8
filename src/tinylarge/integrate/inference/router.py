"""`router`: a learned offload decision that predicts whether the large model fixes the tiny one.

Features, from the tiny model's logits of one sample (``C`` classes):

* the softmax probabilities sorted in descending order (``C`` values; the first is the
  max-softmax confidence);
* the same probabilities in class order (``C`` values): which class the tiny model believes
  matters, because the large model fixes some confusions (e.g. 16QAM vs 64QAM) far more often
  than others (on the default scenario this adds about 1 point of accuracy at 40 % offload);
* the margin between the two largest probabilities;
* the entropy of the softmax, nats;
* optionally (``use_snr=True``) the SNR the device measured, dB.

The classifier is trained on validation data labelled 1 where the large model is right and the
tiny model wrong ("large fixes tiny", see `oracle_offload`), on standardized features:

* ``hidden_units = 0``: a logistic regression (scikit-learn ``LogisticRegression``, L2). The
  standardization is folded into the weights, so on the device the router is one dot product:
  ``score = w . f + b``, offload when ``score >= logit(threshold)`` (no sigmoid is evaluated).
* ``hidden_units = h > 0``: a multi-layer perceptron with one ReLU layer of ``h`` units
  (scikit-learn ``MLPClassifier``, Adam, L2 ``alpha``); the standardization is folded into the
  first layer: ``score = w2 . relu(W1 f + b1) + b2``. On the default scenario 8 units gain
  about 1 point of accuracy at 40 % offload over the logistic regression, for 152 more MACs.

Device cost per request, MACs (`router_macs`): ``F`` for the dot product (``F`` features;
``F h + h`` with a hidden layer) plus
the feature computation, counted in MAC equivalents as an ESTIMATE: per class one exponential,
one multiply by the reciprocal of the softmax sum, one logarithm and one multiply-accumulate of
``p log p`` (`FEATURE_MACS_PER_CLASS` = 4), plus ``C ceil(log2 C)`` comparisons for the sort.
The tiny model's own MACs (``tiny_macs``) are added, because the router runs after it.
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from tinylarge.errors import CannotFitError
from tinylarge.integrate.inference.confidence import softmax
from tinylarge.integrate.inference.contract import (
    Decision,
    NotFittedError,
    Policy,
    Trace,
    check_request,
    tiny_or_large,
)

#: MAC equivalents per class of the feature computation: exp, normalise, log, p log p (ESTIMATE).
FEATURE_MACS_PER_CLASS = 4

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def logit_features(logits: npt.ArrayLike, snr_db: npt.ArrayLike | None = None) -> FloatArray:
    """Router features of each sample (see the module docstring for the list).

    Parameters
    ----------
    logits : array_like, shape (n, C)
        Tiny-model logits, ``C >= 2``.
    snr_db : array_like, shape (n,), optional
        Per-sample SNR, dB; appended as the last feature when given.

    Returns
    -------
    ndarray of float64, shape (n, 2C + 2) or (n, 2C + 3) with ``snr_db``
    """
    z = np.asarray(logits)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must have shape (n, C) with C >= 2, got {z.shape}")
    by_class = softmax(z)
    p = -np.sort(-by_class, axis=1)
    margin = p[:, 0] - p[:, 1]
    entropy = -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=1)
    columns = [p, by_class, margin[:, None], entropy[:, None]]
    if snr_db is not None:
        snr = np.asarray(snr_db, dtype=np.float64)
        if snr.shape != (z.shape[0],):
            raise ValueError(f"snr_db must have shape ({z.shape[0]},), got {snr.shape}")
        columns.append(snr[:, None])
    return np.concatenate(columns, axis=1)


def router_macs(num_classes: int, num_features: int, hidden_units: int = 0) -> int:
    """Device MACs of the router per request (features + classifier; see the module doc)."""
    sort_comparisons = num_classes * math.ceil(math.log2(num_classes))
    classifier = num_features if hidden_units == 0 else (num_features + 1) * hidden_units
    return classifier + FEATURE_MACS_PER_CLASS * num_classes + sort_comparisons


def oracle_offload(trace: Trace) -> BoolArray:
    """Samples that the large model fixes: tiny prediction wrong and large prediction right.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    out: BoolArray = (trace.tiny_prediction != trace.y) & (trace.large_prediction == trace.y)
    return out


class Router(Policy):
    """Offload when the learned probability that the large model fixes the answer is high.

    Parameters
    ----------
    tiny_macs : int
        MACs of the tiny model per inference; the device cost is this plus `router_macs`.
    bytes_per_offload : int
        Bytes sent up per offloaded request (the int8 raw frame), B.
    target_offload : float, optional
        Fraction of validation samples to offload, in [0, 1]; `fit` tunes the threshold to it.
    threshold : float, optional
        Probability threshold in [0, 1] (offload when ``P(fix) >= threshold``). At most one of
        ``target_offload`` and ``threshold``; with neither, 0.5.
    use_snr : bool
        Add the device-measured SNR as a feature (the trace must carry ``snr_db``).
    inverse_regularization : float
        ``C`` of the L2-regularized logistic regression, > 0 (``hidden_units = 0`` only).
    hidden_units : int
        0 for a logistic regression, else the ReLU units of a one-hidden-layer MLP.
    seed : int
        Seeds the MLP's initial weights (the logistic regression is deterministic).

    Attributes
    ----------
    hidden_weights_, hidden_bias_ : ndarray of float64, shapes (F, h) and (h,), or None
        The MLP's first layer on the raw (unstandardized) features (None without one).
    coef_ : ndarray of float64, shape (F,) or (h,)
        Output weights, on the raw features (logistic regression) or on the hidden units.
    intercept_ : float
    score_threshold_ : float
        Offload when ``coef_ . f + intercept_ >= score_threshold_`` (``logit(threshold_)``).
    threshold_ : float
        The probability threshold in use.
    validation_offload_fraction_ : float
        Offload fraction on the validation trace at ``threshold_``.
    """

    name: ClassVar[str] = "router"

    def __init__(
        self,
        *,
        tiny_macs: int,
        bytes_per_offload: int,
        target_offload: float | None = None,
        threshold: float | None = None,
        use_snr: bool = False,
        inverse_regularization: float = 1.0,
        hidden_units: int = 0,
        seed: int = 0,
    ) -> None:
        if target_offload is not None and threshold is not None:
            raise ValueError("give at most one of target_offload and threshold, not both")
        for label, value in (("target_offload", target_offload), ("threshold", threshold)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if tiny_macs < 0 or bytes_per_offload < 0:
            raise ValueError(
                f"tiny_macs and bytes_per_offload must be >= 0, got {tiny_macs}, "
                f"{bytes_per_offload}"
            )
        if not inverse_regularization > 0:
            raise ValueError(f"inverse_regularization must be > 0, got {inverse_regularization}")
        if isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 0:
            raise ValueError(f"hidden_units must be an integer >= 0, got {hidden_units!r}")
        self.tiny_macs = tiny_macs
        self.bytes_per_offload = bytes_per_offload
        self.target_offload = target_offload
        self.threshold = threshold
        self.use_snr = use_snr
        self.inverse_regularization = inverse_regularization
        self.hidden_units = hidden_units
        self.seed = seed

    def _features(self, trace: Trace) -> FloatArray:
        if self.use_snr and trace.snr_db is None:
            raise ValueError("use_snr=True needs a trace with snr_db; this trace has none")
        return logit_features(trace.tiny_logits, trace.snr_db if self.use_snr else None)

    def fit(self, validation: Trace) -> Self:
        """Train the classifier on ``validation`` and set the threshold (see class doc)."""
        features = self._features(validation)
        labels = oracle_offload(validation)
        if labels.all() or not labels.any():
            raise CannotFitError(
                f"cannot train the router: the large model fixes {int(labels.sum())} of "
                f"{labels.size} validation samples; both fixed and unfixed samples are needed"
            )
        mean = features.mean(axis=0)
        std = features.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        standardized = (features - mean) / std
        self.n_features_ = features.shape[1]
        self.hidden_weights_: FloatArray | None = None
        self.hidden_bias_: FloatArray | None = None
        if self.hidden_units == 0:
            clf = LogisticRegression(C=self.inverse_regularization, max_iter=1000)
            clf.fit(standardized, labels)
            self.coef_: FloatArray = np.asarray(clf.coef_[0], dtype=np.float64) / std
            self.intercept_ = float(clf.intercept_[0] - self.coef_ @ mean)
        else:
            mlp = MLPClassifier(
                (self.hidden_units,), alpha=1e-4, max_iter=500, random_state=self.seed % 2**32
            )
            with warnings.catch_warnings():  # a cap on iterations is a budget, not an error
                warnings.simplefilter("ignore", ConvergenceWarning)
                mlp.fit(standardized, labels)
            w1 = np.asarray(mlp.coefs_[0], dtype=np.float64) / std[:, None]
            self.hidden_weights_ = w1
            self.hidden_bias_ = np.asarray(mlp.intercepts_[0], dtype=np.float64) - mean @ w1
            self.coef_ = np.asarray(mlp.coefs_[1][:, 0], dtype=np.float64)
            self.intercept_ = float(mlp.intercepts_[1][0])
        scores = self.decision_scores(validation)
        if self.target_offload is not None:
            self.score_threshold_ = _threshold_for_fraction(scores, self.target_offload)
        else:
            self.score_threshold_ = _logit(0.5 if self.threshold is None else self.threshold)
        self.threshold_ = _sigmoid(self.score_threshold_)
        self.validation_offload_fraction_ = float(np.mean(scores >= self.score_threshold_))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("Router is not fitted: call fit(validation) first")

    def decision_scores(self, trace: Trace) -> FloatArray:
        """Linear score ``w . f + b`` (the log-odds of a fix) of every sample, shape (n,)."""
        self._check_fitted()
        features = self._features(trace)
        if features.shape[1] != self.n_features_:
            raise ValueError(
                f"the router was fitted on {self.n_features_} features, this trace gives "
                f"{features.shape[1]} (a different number of classes?)"
            )
        if self.hidden_weights_ is not None and self.hidden_bias_ is not None:
            features = np.maximum(features @ self.hidden_weights_ + self.hidden_bias_, 0.0)
        out: FloatArray = features @ self.coef_ + self.intercept_
        return out

    def fix_probability(self, trace: Trace) -> FloatArray:
        """Predicted probability that the large model fixes each sample, shape (n,)."""
        return _sigmoid_array(self.decision_scores(trace))

    @property
    def device_macs_per_request(self) -> int:
        """Tiny model + router MACs per request (after `fit`)."""
        self._check_fitted()
        num_classes = (self.n_features_ - 2 - int(self.use_snr)) // 2
        return self.tiny_macs + router_macs(num_classes, self.n_features_, self.hidden_units)

    def decide(
        self,
        trace: Trace,
        index: npt.ArrayLike,
        rng: np.random.Generator,
        device: npt.ArrayLike | None = None,
    ) -> Decision:
        """Route each request (see `Policy.decide`); deterministic, ``rng`` is unused.

        Every request runs the tiny model and the router on the device (``device_macs``); the
        tiny answer is the fallback. Offloaded requests send ``bytes_per_offload`` bytes and are
        answered by the large model.
        """
        idx = check_request(trace, index, rng)
        self._check_fitted()
        offload = (self.decision_scores(trace) >= self.score_threshold_)[idx]
        return tiny_or_large(
            trace,
            idx,
            offload,
            bytes_per_offload=self.bytes_per_offload,
            device_macs=self.device_macs_per_request,
        )


def _threshold_for_fraction(scores: FloatArray, fraction: float) -> float:
    """A score threshold such that ``mean(scores >= t)`` is ``fraction`` (up to ties)."""
    ordered = np.sort(scores)[::-1]
    m = round(fraction * ordered.size)
    if m == 0:
        return float(np.inf)
    if m == ordered.size:
        return float(ordered[-1])
    return float((ordered[m - 1] + ordered[m]) / 2)


def _logit(p: float) -> float:
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p / (1.0 - p))


def _sigmoid(s: float) -> float:
    return float(_sigmoid_array(np.array([s]))[0])


def _sigmoid_array(s: FloatArray) -> FloatArray:
    with np.errstate(over="ignore"):
        out: FloatArray = 1.0 / (1.0 + np.exp(-s))
    return out
