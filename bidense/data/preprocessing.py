"""Per-image preprocessing: augmentation and normalisation.

* ``imagenet``: larq-zoo's ImageNet preprocessing (``larq_zoo/training/data.py``):
  training takes a random-resized crop (``sample_distorted_bounding_box``, area
  8-100 %, aspect 3/4-4/3), resizes it bicubically and flips it; evaluation takes
  the central 87.5 % of the short side and resizes it. No colour jitter, as there.
* ``pad_crop``: the usual CIFAR augmentation (the paper trains CIFAR-10 with crops
  and mirroring, section 5): zero-pad by ``crop_padding`` pixels per side, take a
  random crop of the original size, flip. It also serves small grey images
  (MNIST, Fashion-MNIST): they keep their native size and single channel, and the
  models pick their CIFAR stem for inputs this small.

Training augmentation draws its randomness either from TensorFlow's stateful
random ops (``rng=None``) or, given a per-example key ``rng`` (shape [2] int64),
from stateless ops: the training pipeline keys them by (seed, position in the
stream), so an example's augmentation does not depend on how many examples were
drawn before it in this process, which is what lets a resumed run see the same
augmented batches as an uninterrupted one (``--deterministic``).

Normalisation subtracts a per-channel mean and divides by a per-channel std (the
dataset's own statistics where known, else maps [0, 255] to [-1, 1], as for image
folders: bidense.data.folders says why), so the first binary layer sees
zero-centred inputs. ``dataset.channels`` converts grey images to RGB or back
(:func:`convert_channels`) before any of this, as they are read.
"""

from __future__ import annotations

import tensorflow as tf

# Per-channel mean/std on the [0, 255] scale.
IMAGENET_STATS = (
    (0.485 * 255, 0.456 * 255, 0.406 * 255),
    (0.229 * 255, 0.224 * 255, 0.225 * 255),
)
NORMALIZATION = {
    "imagenet2012": IMAGENET_STATS,
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
    "mnist": ((33.3,), (78.6,)),
    "fashion_mnist": ((72.9,), (90.0,)),
}
DEFAULT_STATS = ((127.5,), (127.5,))

PREPROCESSINGS = ("auto", "imagenet", "pad_crop")


def choose_preprocessing(preprocessing: str, image_shape) -> str:
    """Resolves "auto": ImageNet-style for variable-size or large images."""
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(
            f"unknown preprocessing {preprocessing!r}; choose one of: "
            + ", ".join(PREPROCESSINGS)
        )
    if preprocessing != "auto":
        return preprocessing
    height, width = image_shape[:2]
    if height is None or width is None or min(height, width) > 64:
        return "imagenet"
    return "pad_crop"


def output_size(preprocessing: str, image_size: int, image_shape) -> tuple[int, int]:
    """The (H, W) the model sees: ``image_size`` if set, else a sensible default."""
    if image_size:
        return image_size, image_size
    if preprocessing == "imagenet":
        return 224, 224
    return image_shape[0], image_shape[1]


def convert_channels(image, channels: int):
    """``image`` with ``channels`` channels: grey <-> RGB, an alpha channel dropped."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have in (2, 4):  # grey + alpha, RGBA
        image, have = image[..., : have - 1], have - 1
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(image)
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    return image


def fit_image(image, channels: int, size=None):
    """A uint8 image with ``channels`` channels, resized to ``size`` if given.

    The resize is antialiased: a folder may hold images far larger than ``size``,
    and plain bilinear sampling would alias them. The result is rounded back to
    uint8, so it caches as compactly as the original.
    """
    image = convert_channels(image, channels)
    if size is None:
        return image
    resized = tf.image.resize(image, size, method="bilinear", antialias=True)
    resized = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
    return tf.ensure_shape(resized, (*size, channels))


def normalize(image, dataset_name: str):
    mean, std = NORMALIZATION.get(dataset_name.split(":")[0], DEFAULT_STATS)
    channels = image.shape[-1]
    mean = tf.constant(mean if len(mean) == channels else mean[:1] * channels)
    std = tf.constant(std if len(std) == channels else std[:1] * channels)
    return (tf.cast(image, tf.float32) - mean) / std


def _keys(rng, n: int):
    """``n`` independent stateless seeds from one key (None stays None)."""
    if rng is None:
        return [None] * n
    return tf.unstack(tf.random.experimental.stateless_split(rng, num=n))


def _flip(image, rng):
    if rng is None:
        return tf.image.random_flip_left_right(image)
    return tf.image.stateless_random_flip_left_right(image, seed=rng)


def imagenet_train(image, size, rng=None):
    """Random-resized crop + flip, as larq-zoo trains ImageNet."""
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
    box_rng, flip_rng = _keys(rng, 2)
    box_args = dict(
        bounding_boxes=bbox,
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    if rng is None:
        box = tf.image.sample_distorted_bounding_box(tf.shape(image), **box_args)
    else:
        box = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image), seed=box_rng, **box_args
        )
    begin, crop_size, _ = box
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, size, method="bicubic")
    image = _flip(image, flip_rng)
    return tf.clip_by_value(image, 0.0, 255.0)


def imagenet_eval(image, size, crop_fraction=0.875):
    """Central crop of 87.5 % of the short side, bicubic resize (larq-zoo)."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.cast(
        crop_fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32
    )
    top, left = (height - side) // 2, (width - side) // 2
    image = tf.slice(image, [top, left, 0], [side, side, -1])
    image = tf.image.resize(image, size, method="bicubic")
    return tf.clip_by_value(image, 0.0, 255.0)


def pad_crop_train(image, size, padding: int, flip: bool, rng=None):
    """Pad-and-random-crop (+ flip) on small images (CIFAR recipe)."""
    image = tf.cast(image, tf.float32)
    crop_rng, flip_rng = _keys(rng, 2)
    if tuple(image.shape[:2]) != tuple(size):
        image = tf.image.resize(image, size, method="bilinear")
    if padding:
        image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        crop = [size[0], size[1], image.shape[-1]]
        if rng is None:
            image = tf.image.random_crop(image, crop)
        else:
            image = tf.image.stateless_random_crop(image, crop, seed=crop_rng)
    if flip:
        image = _flip(image, flip_rng)
    return image


def pad_crop_eval(image, size):
    image = tf.cast(image, tf.float32)
    if tuple(image.shape[:2]) != tuple(size):
        image = tf.image.resize(image, size, method="bilinear")
    return image


def make_preprocess_fn(cfg_dataset, image_shape, training: bool):
    """Returns ``f(image, label, rng=None) -> (float image, label)`` for ``map``.

    ``rng`` (training only): a stateless key for the augmentation, see above.
    """
    kind = choose_preprocessing(cfg_dataset.preprocessing, image_shape)
    size = output_size(kind, cfg_dataset.image_size, image_shape)
    name = cfg_dataset.name

    def preprocess(image, label, rng=None):
        if kind == "imagenet":
            image = tf.cast(image, tf.float32)
            if training:
                image = imagenet_train(image, size, rng)
            else:
                image = imagenet_eval(image, size)
        elif training:
            image = pad_crop_train(
                image, size, cfg_dataset.crop_padding, cfg_dataset.flip, rng
            )
        else:
            image = pad_crop_eval(image, size)
        return normalize(image, name), tf.cast(label, tf.int32)

    return preprocess
