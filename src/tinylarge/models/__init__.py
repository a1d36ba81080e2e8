"""The model zoo (tiny CNNs, large ResNets, the RF foundation transformer, models users
bring), the training loop, evaluation and persistence."""

from tinylarge.models import external as _external  # noqa: F401  (registers the models users bring)
from tinylarge.models import large_resnet as _large_resnet  # noqa: F401  (registers the model)
from tinylarge.models import rf_transformer as _rf_transformer  # noqa: F401  (registers the model)
from tinylarge.models import tiny_cnn as _tiny_cnn  # noqa: F401  (registers the model)
from tinylarge.models.blocks import BlockModel
from tinylarge.models.registry import (
    build_model,
    check_options,
    count_parameters,
    model_entry,
    model_names,
    register_model,
)

__all__ = [
    "BlockModel",
    "build_model",
    "check_options",
    "count_parameters",
    "model_entry",
    "model_names",
    "register_model",
]
