"""Pretrained weights, pinned by sha256: larq-zoo's ImageNet weights and bidense's own.

``weights="imagenet"``: larq-zoo's releases (``https://github.com/larq/zoo/releases``);
they load into bidense's larq-zoo-compatible configuration (``pad_value=0.0`` and
the builder's other defaults), whose layer topology equals larq-zoo's.
Preprocessing that goes with them: RGB 0-255 normalised by ImageNet mean/std,
224x224 centre crop of 0.875 (larq-zoo ``training/data.py``).

``weights="fashion_mnist"``: weights trained by bidense on Fashion-MNIST (28x28x1,
10 classes), shipped inside the package as compact files
(:mod:`bidense.pretrained.compact`), each with the switches it was trained with.

Loading into a model of another head or input size (fine-tuning) is
:mod:`bidense.transfer`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
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


# The weights the builders know by name (any other string is a path).
NAMED_WEIGHTS = ("imagenet", "fashion_mnist")


# bidense's own weights: files in the package (setup.cfg's package_data ships them).
FASHION_MNIST_DIR = Path(__file__).resolve().parent / "pretrained" / "fashion_mnist"
# Every file committed to the repository stays this small.
MAX_FILE_MIB = 5


@dataclasses.dataclass(frozen=True)
class PretrainedSpec:
    """One model's bidense-trained weights: its compact file and how it was trained.

    Attributes:
        file: file name in :data:`FASHION_MNIST_DIR` (``<model>.npz``).
        sha256: the file's sha256, checked before every load.
        switches: every switch the weights were trained with
            (``bidense.model_switches`` keys, stem and pad_value resolved). They
            are the defaults of a model built with these weights; a switch that
            changes the forward pass must not differ.
        input_shape, num_classes: the defaults with these weights.
        test_top1: the run's test top-1 on the full Fashion-MNIST test split
            (its summary.json), which ``evaluate.py --weights fashion_mnist``
            reproduces.
    """

    file: str
    sha256: str
    switches: dict
    input_shape: tuple = (28, 28, 1)
    num_classes: int = 10
    test_top1: float | None = None


# Model name -> its Fashion-MNIST weights. `python -m bidense.pretrained --workdir W`
# writes a finished train.py run's file into FASHION_MNIST_DIR and prints its
# entry (sha256, switches, test top-1); trained models are added with the run
# that produced them (docs/results.md).
FASHION_MNIST_WEIGHTS: dict[str, PretrainedSpec] = {
    # Run bdn28_headline: `python train.py --model binary_densenet28` as it stands.
    "binary_densenet28": PretrainedSpec(
        file="binary_densenet28.npz",
        sha256="b9359add8c810c17cebf4e85b3d09e5864b39b784031180c147cbf094c3ebb20",
        switches={
            "growth_rate": 16,
            "initial_filters": 32,
            "dilation": (1, 1, 1, 1),
            "bottleneck": 0,
            "transition": "pool_first",
            "binary": True,
            "fp_activation": "relu",
            "scaling": "none",
            "gradient": "ste",
            "clip_value": 1.3,
            "downsample": "fp",
            "pad_value": 1.0,
            "stem": "cifar",
            "blocks": (6, 6, 6, 5),
            "reduction": (2.7, 2.7, 2.2),
        },
        test_top1=0.9049999713897705,
    ),
    # Run e18_default: `python train.py --model binary_resnet_e18` as it stands.
    "binary_resnet_e18": PretrainedSpec(
        file="binary_resnet_e18.npz",
        sha256="5aba2cfb604656a0c33fbcf8b7824e2e65381bb4c79ae551dce0912e4ce98033",
        switches={
            "filters": (16, 32, 64, 128),
            "binary": True,
            "fp_activation": "relu",
            "scaling": "none",
            "gradient": "ste",
            "clip_value": 1.25,
            "downsample": "fp",
            "pad_value": 1.0,
            "stem": "cifar",
            "blocks": (2, 2, 2, 2),
        },
        test_top1=0.8970000147819519,
    ),
}


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fashion_mnist_spec(model_name: str) -> PretrainedSpec:
    """The table entry of ``model_name``; a one-line ValueError if there is none."""
    spec = FASHION_MNIST_WEIGHTS.get(model_name)
    if spec is None:
        shipped = ", ".join(sorted(FASHION_MNIST_WEIGHTS)) or "none yet"
        raise ValueError(
            f"No Fashion-MNIST weights are shipped for {model_name}; they exist "
            f"for: {shipped}. Use weights=None or a file path."
        )
    return spec


def fetch_fashion_mnist_weights(model_name: str) -> Path:
    """The path of ``model_name``'s shipped file, after checking its sha256."""
    spec = fashion_mnist_spec(model_name)
    path = FASHION_MNIST_DIR / spec.file
    if not path.is_file():
        raise ValueError(
            f"bidense's Fashion-MNIST weights file {path} is missing; reinstall "
            "bidense (pip install .) or pass weights=None."
        )
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise ValueError(
            f"bidense's Fashion-MNIST weights file {path} has sha256 {digest}, the "
            f"table pins {spec.sha256}: the file is damaged or not the released "
            "one; reinstall bidense or pass weights=None."
        )
    return path


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


def workdir_model_file(workdir: str | Path) -> Path:
    """The model a train.py work dir reported: ``best.keras``, else ``final.keras``."""
    for name in ("best.keras", "final.keras"):
        if (Path(workdir) / name).is_file():
            return Path(workdir) / name
    raise ValueError(
        f"Weights {os.fspath(workdir)!r} is a directory without best.keras or "
        "final.keras; give a finished train.py work dir or a weights file."
    )


def load_weights_file(model: tf.keras.Model, path: str) -> None:
    """Loads weights that fit ``model`` as built, every layer of it.

    ``path``: a Keras weights file (.h5, .keras or a TF checkpoint prefix), a
    compact ``.npz`` file (:mod:`bidense.pretrained.compact`) or a train.py work
    dir (its ``best.keras``, else ``final.keras``).
    """
    path = os.fspath(path)
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise ValueError(
            f"Weights file {path!r} does not exist; pass weights=None, 'imagenet' or "
            "the path of a file saved with model.save_weights()."
        )
    if os.path.isdir(path) and not os.path.exists(path + ".index"):
        path = os.fspath(workdir_model_file(path))
    from bidense.pretrained import compact

    if compact.is_compact(path):
        try:
            contents = compact.read(path)
        except compact.CompactFileError as error:
            raise ValueError(f"Weights file {path!r}: {error}") from None
        load_layers(model, contents.layers, f"Weights file {path!r}")
        return
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


def load_layers(
    model: tf.keras.Model, layers: dict[str, list[np.ndarray]], source: str
) -> None:
    """Sets every weight of ``model`` from ``layers`` (layer name -> arrays).

    Every layer of ``model`` that has weights must be there with the same
    shapes; ``layers`` may have more only where ``model`` has no classifier
    (``include_top=False``). ``source`` names the weights in messages.
    """
    hint = "check the model name, num_classes, include_top, input channels and switches"
    ours = {layer.name for layer in model.layers if layer.weights}
    extra = sorted(set(layers) - ours)
    if extra and not (set(extra) <= {"head_dense"} and "head_dense" not in ours):
        raise ValueError(
            f"{source} does not fit {model.name} as built (it has layers "
            f"{', '.join(extra[:3])} that the model lacks); {hint}."
        )
    for layer in model.layers:
        if not layer.weights:
            continue
        values = layers.get(layer.name)
        if values is None:
            raise ValueError(
                f"{source} does not fit {model.name} as built (no weights for layer "
                f"{layer.name}); {hint}."
            )
        shapes = [tuple(w.shape) for w in layer.weights]
        if [tuple(np.shape(v)) for v in values] != shapes:
            raise ValueError(
                f"{source} does not fit {model.name} as built (layer {layer.name}: "
                f"{[tuple(np.shape(v)) for v in values]} vs {shapes}); {hint}."
            )
        layer.set_weights(values)
