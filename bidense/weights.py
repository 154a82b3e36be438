"""Pretrained weights: larq-zoo's published ImageNet weights, pinned by sha256.

The files are larq-zoo's releases (``https://github.com/larq/zoo/releases``); they
load into bidense's larq-zoo-compatible configuration (``pad_value=0.0`` and the
builder's other defaults), whose layer topology equals larq-zoo's. Preprocessing
that goes with them: RGB 0-255 normalised by ImageNet mean/std, 224x224 centre
crop of 0.875 (larq-zoo ``training/data.py``).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

RELEASES_URL = "https://github.com/larq/zoo/releases/download"
IMAGENET_MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    release: str  # larq-zoo release tag, e.g. "binary_densenet-v0.1.0"
    file: str
    sha256: str

    @property
    def url(self) -> str:
        return f"{RELEASES_URL}/{self.release}/{self.file}"


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    top: WeightsFile
    notop: WeightsFile
    input_size: int = 224
    mean_rgb: tuple = IMAGENET_MEAN_RGB
    std_rgb: tuple = IMAGENET_STD_RGB


def _spec(release, stem, top_sha, notop_sha, notop_release=None):
    return WeightsSpec(
        top=WeightsFile(release, f"{stem}_weights.h5", top_sha),
        notop=WeightsFile(
            notop_release or release, f"{stem}_weights_notop.h5", notop_sha
        ),
    )


_DN = "binary_densenet-v0.1.0"
IMAGENET_WEIGHTS: dict[str, WeightsSpec] = {
    "binary_resnet_e18": _spec(
        "resnet_e-v0.1.0",
        "resnet_e_18",
        "bde4a64d42c164a7b10a28debbe1ad5b287c499bc0247ecb00449e6e89f3bf5b",
        "14cb037e47d223827a8d09db88ec73d60e4153a4464dca847e5ae1a155e7f525",
    ),
    "binary_densenet28": _spec(
        _DN,
        "binary_densenet_28",
        "21fe3ca03eed244df9c41a2219876fcf03e73800932ec96a3e2a76af4747ac53",
        "a376df1e41772c4427edd1856072b934a89bf293bf911438bf6f751a9b2a28f5",
    ),
    "binary_densenet37": _spec(
        _DN,
        "binary_densenet_37",
        "8056a5d52c3ed86a934893987d09a06f59a5166aa9bddcaedb050f111d0a7d76",
        "4e12bca9fd27580a5b833241c4eb35d6cc332878c406048e6ca8dbbc78d59175",
    ),
    "binary_densenet37_dilated": _spec(
        _DN,
        "binary_densenet_37_dilated",
        "15c1bcd79b8dc22971382fbf79acf364a3f51049d0e584a11533e6fdbb7363d3",
        "8b31fbfdc8de08a46c6adcda1ced48ace0a2ff0ce45a05c72b2acc27901dd88b",
        notop_release="binary_densenet-v0.1.1",
    ),
    "binary_densenet45": _spec(
        _DN,
        "binary_densenet_45",
        "d00a0d26fbd2dba1bfba8c0306c770f3aeea5c370e99f963bb239bd916f72c37",
        "e72d5cc6b0afe4612f8be7b1f9bb48a53ba2c8468b57bf1266d2900c99fd2adf",
    ),
}


def fetch_imagenet_weights(model_name: str, include_top: bool) -> str:
    """Returns the local path of the pinned file, downloading it once.

    Cached by ``tf.keras.utils.get_file`` under ``$KERAS_HOME`` (default
    ``~/.keras``) in ``larq/models/<release>``; the sha256 is checked every time.
    """
    spec = IMAGENET_WEIGHTS.get(model_name)
    if spec is None:
        raise ValueError(
            f"No ImageNet weights are published for {model_name}; they exist for: "
            f"{', '.join(sorted(IMAGENET_WEIGHTS))}. Use weights=None or a file path."
        )
    entry = spec.top if include_top else spec.notop
    subdir = os.path.join("larq", "models", entry.release)
    try:
        return tf.keras.utils.get_file(
            fname=entry.file,
            origin=entry.url,
            file_hash=entry.sha256,
            hash_algorithm="sha256",
            cache_subdir=subdir,
            # get_file in Keras 2.15 ignores KERAS_HOME; honour it like Keras does.
            cache_dir=os.environ.get("KERAS_HOME"),
        )
    except Exception as error:  # network errors come in many types
        cache_home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
        target = os.path.join(cache_home, subdir, entry.file)
        raise ValueError(
            f"Could not fetch ImageNet weights for {model_name} from {entry.url} "
            f"({type(error).__name__}); download that file to {target} "
            f"(sha256 {entry.sha256}) or pass weights=<path>."
        ) from None


def load_weights_file(model: tf.keras.Model, path: str) -> None:
    """Loads a Keras weights file (.h5, .keras or a TF checkpoint prefix)."""
    path = os.fspath(path)
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise ValueError(
            f"Weights file {path!r} does not exist; pass weights=None, 'imagenet' or "
            "the path of a file saved with model.save_weights()."
        )
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises ValueError, OSError, KeyError...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = (
            "check the model name, num_classes, include_top, input channels and "
            "architecture switches."
        )
        if isinstance(error, OSError):  # h5py cannot open it at all
            hint = (
                "it is not a whole weights file: pass one saved with "
                "model.save_weights()."
            )
        raise ValueError(
            f"Weights file {path!r} does not fit {model.name} as built "
            f"({type(error).__name__}: {first_line[:200]}); {hint}"
        ) from None
