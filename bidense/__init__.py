"""bidense: accurate binary neural networks from scratch, on Larq.

Implements ResNetE and BinaryDenseNet from Bethge, Yang, Bornstein and Meinel,
"Back to Simplicity: How to Train Accurate BNNs from Scratch?" (arXiv:1906.08637),
with the paper's ablation switches as constructor arguments.

    >>> import bidense
    >>> model = bidense.create_model("binary_densenet28", input_shape=(32, 32, 3),
    ...                              num_classes=10)
    >>> bidense.model_stats(model)["size_mib"]
"""

__version__ = "0.1.0"

from bidense import models  # noqa: E402  (registers every model)
from bidense.registry import create_model, list_models, model_switches  # noqa: E402
from bidense.stats import model_stats  # noqa: E402

__all__ = [
    "create_model",
    "list_models",
    "model_stats",
    "model_switches",
    "models",
    "__version__",
]
