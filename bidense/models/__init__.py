"""bidense's architectures: ResNetE and BinaryDenseNet (Bethge et al. 2019).

>>> from bidense.models import BinaryDenseNet37
>>> model = BinaryDenseNet37(input_shape=(32, 32, 3), num_classes=10)
"""

from bidense.models.densenet import (
    BinaryDenseNet28,
    BinaryDenseNet37,
    BinaryDenseNet37Dilated,
    BinaryDenseNet45,
)
from bidense.models.resnet_e import BinaryResNetE18, BinaryResNetE34

__all__ = [
    "BinaryDenseNet28",
    "BinaryDenseNet37",
    "BinaryDenseNet37Dilated",
    "BinaryDenseNet45",
    "BinaryResNetE18",
    "BinaryResNetE34",
]
