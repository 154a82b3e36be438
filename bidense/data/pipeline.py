"""tf.data input pipelines: read, cache, shuffle, repeat, map, batch, prefetch.

Decoded uint8 images are cached in memory before augmentation when they fit
(``cache="auto"``: up to ``CACHE_LIMIT_BYTES``), so each epoch after the first
costs only the augmentation, which runs in parallel (``AUTOTUNE``) and overlaps
the training step through ``prefetch``. docs/results.md records the pipeline-only
throughput next to the training throughput to show it is not the bottleneck.
"""

from __future__ import annotations

import math

import tensorflow as tf

from bidense.data import preprocessing, sources, subset

CACHE_LIMIT_BYTES = 4 * 2**30

AUTOTUNE = tf.data.AUTOTUNE


def _should_cache(cache, image_shape, num_examples) -> bool:
    if cache in (True, "true", "yes"):
        return True
    if cache in (False, "false", "no", "none"):
        return False
    if cache != "auto":
        raise ValueError(f"dataset.cache must be auto, true or false, got {cache!r}")
    if None in image_shape[:2] or not num_examples:
        return False
    return math.prod(image_shape) * num_examples <= CACHE_LIMIT_BYTES


def _options() -> tf.data.Options:
    options = tf.data.Options()
    # TFDS's mock data and small datasets are a single file, which the default
    # FILE auto-sharding of MultiWorkerMirroredStrategy cannot split over workers.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return options


def count_examples(ds: tf.data.Dataset) -> int:
    """Counts a (small) dataset whose size TFDS does not know, e.g. mock data."""
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


# Passes over the training split the stream can make: effectively infinite.
_MAX_PASSES = 2**40


def train_dataset(
    builder,
    info,
    cfg_dataset,
    batch_size: int,
    seed: int,
    *,
    num_examples: int | None = None,
    start_step: int = 0,
    deterministic: bool = False,
):
    """Infinite, shuffled, augmented, batched training stream, from ``start_step``.

    The stream is a function of ``seed`` and the position in it: pass ``p`` over
    the split is shuffled with a seed derived from (seed, p), and the ``i``-th
    example of the stream is augmented with stateless random ops keyed by
    (seed, i). A resumed run (Keras restores model, optimizer and step, not the
    tf.data position) therefore starts at batch ``start_step`` by skipping whole
    passes for free and the rest of one pass before the augmentation (cheap:
    shuffling cached images), and sees the batches the uninterrupted run saw.

    ``deterministic`` also keeps the parallel map's output order (else the map
    may reorder examples within its parallel window for speed, so batch contents
    depend on thread timing). ``num_examples`` is the split's size (counted if
    None).
    """
    n = num_examples or info.train_examples
    if not n:
        n = count_examples(builder.as_dataset(split=info.splits.train))
    # The same file order in every pass (TFDS would reshuffle it per iterator,
    # i.e. differently after a resume); the example shuffle below varies per pass.
    ds = _read(
        builder, info.splits.train, info, cfg_dataset,
        shuffle_files=subset.shuffle_files(cfg_dataset),
        seed=seed, reshuffle=False,
    )  # fmt: skip
    ds = subset.apply(ds, cfg_dataset, train=True)
    if _should_cache(cfg_dataset.cache, info.image_shape, info.train_examples):
        ds = ds.cache()
    buffer = cfg_dataset.shuffle_buffer

    def one_pass(p):
        # A distinct shuffle seed per pass, as a tensor (p is one). TensorFlow
        # pairs an op seed with the graph-level seed and, if that is 0 (--seed 0),
        # tests `op_seed == 0` in Python, which a symbolic tensor cannot answer.
        # Inside this traced function set_random_seed sets only the function
        # graph's seed (not the process's), so any nonzero constant will do.
        tf.compat.v1.set_random_seed(0x5EED)
        order = ds.shuffle(
            buffer, seed=seed * 1_000_003 + p, reshuffle_each_iteration=False
        )
        return tf.data.Dataset.zip(tf.data.Dataset.range(p * n, (p + 1) * n), order)

    first_pass, offset = divmod(start_step * batch_size, n)
    ds = tf.data.Dataset.range(first_pass, _MAX_PASSES).flat_map(one_pass)
    ds = ds.skip(offset)  # before the (expensive) augmentation
    preprocess = preprocessing.make_preprocess_fn(cfg_dataset, info.image_shape, True)
    key = tf.constant([seed, 0x5EED], tf.int64)

    def augment(index, example):
        image, label = example
        rng = tf.random.experimental.stateless_fold_in(key, index)
        return preprocess(image, label, rng=rng)

    ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # drop_remainder keeps every step's shapes static (one XLA compilation).
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(AUTOTUNE).with_options(_options())


def eval_dataset(builder, split: str, info, cfg_dataset, batch_size: int):
    """Every example of ``split`` once, in order, for exact accuracy."""
    ds = subset.apply(
        _read(builder, split, info, cfg_dataset, shuffle_files=False, seed=0),
        cfg_dataset,
    )
    # No .cache() here: an in-memory cache is shared by every iterator of this
    # dataset, and one read partially (evaluate.py's one-batch warm-up, prefetch
    # read-ahead) raced with the next: evaluate.py once scored 66 of the 10,000
    # Fashion-MNIST test images. The split is read once per evaluation anyway.
    preprocess = preprocessing.make_preprocess_fn(cfg_dataset, info.image_shape, False)
    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)
    return ds.prefetch(AUTOTUNE).with_options(_options())


def _read(builder, split, info, cfg_dataset, **read_args) -> tf.data.Dataset:
    """``sources.read``, then the images brought to the dataset's channels and,
    for a folder of mixed sizes on its way to pad-and-crop, to the model's size.

    Before the cache: the cache then holds images of one shape, as small as
    they get. Nothing is added for a TFDS dataset read as it is.
    """
    ds = sources.read(builder, split, **read_args)
    shape = ds.element_spec[0].shape
    channels = info.image_shape[-1]
    kind = preprocessing.choose_preprocessing(
        cfg_dataset.preprocessing, info.image_shape
    )
    size = None
    if kind == "pad_crop" and None in shape[:2]:
        size = preprocessing.output_size(kind, cfg_dataset.image_size, info.image_shape)
    if size is None and shape[-1] == channels:
        return ds

    def fit(image, label):
        return preprocessing.fit_image(image, channels, size), label

    # In order: the training stream's position k must stay example k.
    return ds.map(fit, num_parallel_calls=AUTOTUNE, deterministic=True)


def model_input_shape(info, cfg_dataset) -> tuple[int, int, int]:
    """The input shape the model is built with (after preprocessing)."""
    kind = preprocessing.choose_preprocessing(
        cfg_dataset.preprocessing, info.image_shape
    )
    height, width = preprocessing.output_size(
        kind, cfg_dataset.image_size, info.image_shape
    )
    return height, width, info.image_shape[-1]
