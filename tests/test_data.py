"""Input pipelines: preprocessing, tf.data, TFDS sources (mock data, offline)."""

import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bidense import data
from bidense.data import pipeline, preprocessing, sources
from bidense.training import recipes


def dataset_cfg(name, **changes):
    cfg = recipes.dataset_config(name).dataset
    with cfg.unlocked():
        cfg.update(changes)
    return cfg


def test_auto_preprocessing_by_image_size():
    assert preprocessing.choose_preprocessing("auto", (None, None, 3)) == "imagenet"
    assert preprocessing.choose_preprocessing("auto", (256, 256, 3)) == "imagenet"
    assert preprocessing.choose_preprocessing("auto", (28, 28, 1)) == "pad_crop"
    with pytest.raises(ValueError, match="unknown preprocessing 'crop'"):
        preprocessing.choose_preprocessing("crop", (28, 28, 1))


def test_imagenet_train_and_eval_shapes_and_normalisation():
    image = tf.random.uniform((300, 200, 3), 0, 255, tf.int32)
    image = tf.cast(image, tf.uint8)
    cfg = dataset_cfg("imagenet2012")
    for training in (True, False):
        fn = preprocessing.make_preprocess_fn(cfg, (None, None, 3), training)
        out, label = fn(image, tf.constant(7, tf.int64))
        assert out.shape == (224, 224, 3) and out.dtype == tf.float32
        assert label.dtype == tf.int32
    # Uniform noise normalised with ImageNet stats: mean near (127.5-116)/57, |x|<3.
    assert abs(float(tf.reduce_mean(out))) < 0.5
    assert float(tf.reduce_max(tf.abs(out))) < 3.0


def test_imagenet_eval_is_the_central_crop():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # the central square is white, the sides black
    out = preprocessing.imagenet_eval(tf.constant(image, tf.float32), (32, 32))
    assert float(tf.reduce_min(out)) > 250


def test_pad_crop_keeps_size_and_shifts_content():
    image = tf.reshape(tf.range(28 * 28, dtype=tf.float32), (28, 28, 1))
    tf.random.set_seed(0)
    crops = [
        preprocessing.pad_crop_train(image, (28, 28), 2, flip=False) for _ in range(20)
    ]
    assert all(c.shape == (28, 28, 1) for c in crops)
    assert any(not np.array_equal(c.numpy(), image.numpy()) for c in crops)
    eval_fn = preprocessing.make_preprocess_fn(
        dataset_cfg("fashion_mnist"), (28, 28, 1), False
    )
    out, _ = eval_fn(tf.cast(image % 256, tf.uint8), 0)
    assert out.shape == (28, 28, 1)


def test_grey_images_can_be_resized():
    cfg = dataset_cfg("fashion_mnist", image_size=32)
    splits = data.Splits("train", None, "test")
    info = sources.DatasetInfo("fashion_mnist", (28, 28, 1), 10, splits, 10, 0, 10)
    assert pipeline.model_input_shape(info, cfg) == (32, 32, 1)
    fn = preprocessing.make_preprocess_fn(cfg, (28, 28, 1), True)
    out, _ = fn(tf.zeros((28, 28, 1), tf.uint8), 0)
    assert out.shape == (32, 32, 1)


def test_cache_only_when_it_fits():
    assert pipeline._should_cache("auto", (28, 28, 1), 60_000)
    assert not pipeline._should_cache("auto", (None, None, 3), 1_281_167)
    assert not pipeline._should_cache("auto", (224, 224, 3), 1_281_167)
    assert pipeline._should_cache(True, (None, None, 3), 10)
    with pytest.raises(ValueError, match="dataset.cache"):
        pipeline._should_cache("sometimes", (28, 28, 1), 10)


@pytest.mark.parametrize(
    "name, shape", [("cifar10", (32, 32, 3)), ("fashion_mnist", (28, 28, 1))]
)
def test_pipelines_on_mock_data(tmp_path, name, shape):
    with tfds.testing.mock_data(
        num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        builder = data.prepare(name, data_dir=str(tmp_path))
        cfg = dataset_cfg(name, validation_examples=4)
        info = data.dataset_info(builder, cfg)
        train = data.train_dataset(builder, info, cfg, batch_size=8, seed=0)
        images, labels = next(iter(train))
        assert images.shape == (8, *shape) and labels.shape == (8,)
        assert images.dtype == tf.float32 and labels.dtype == tf.int32
        # Eval: every example exactly once, the last batch partial.
        test = data.eval_dataset(builder, info.splits.test, info, cfg, 8)
        sizes = [int(x.shape[0]) for x, _ in test]
        assert sizes == [8, 8, 4]
        assert info.num_classes == 10 and info.image_shape == shape


@pytest.mark.parametrize(
    "name, channels, shape",
    [("fashion_mnist", 3, (28, 28, 3)), ("cifar10", 1, (32, 32, 1))],
)
def test_channels_convert_grey_and_rgb(tmp_path, name, channels, shape):
    with tfds.testing.mock_data(
        num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        builder = data.prepare(name, data_dir=str(tmp_path))
        cfg = dataset_cfg(name, validation_examples=4, channels=channels)
        info = data.dataset_info(builder, cfg)
        assert info.image_shape == shape
        assert data.model_input_shape(info, cfg) == shape
        images, _ = next(iter(data.train_dataset(builder, info, cfg, 8, seed=0)))
        test = data.eval_dataset(builder, info.splits.test, info, cfg, 8)
        test_images, _ = next(iter(test))
    assert images.shape == (8, *shape) and test_images.shape == (8, *shape)
    if channels == 3:  # grey replicated: the three channels are equal
        np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert len(info.class_names) == 10  # TFDS's label names, for labels.txt


def test_training_stream_restarts_at_any_step_with_the_same_batches(tmp_path):
    """What a resumed run relies on: batch k does not depend on where it started.

    40 examples, batches of 8: a pass is 5 batches, so step 7 starts in the
    second pass. (deterministic=False differs only in letting the parallel map
    reorder neighbouring examples, so it is not compared exactly.)
    """
    # Pad-crop and flip augmentation; no validation carve (mock data ignores it).
    cfg = dataset_cfg("cifar10", shuffle_buffer=16, validation_examples=0)
    with tfds.testing.mock_data(
        num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        builder = data.prepare("cifar10", data_dir=str(tmp_path))
        info = data.dataset_info(builder, cfg)

        def batches(start_step, count, seed=0):
            ds = data.train_dataset(
                builder, info, cfg, 8, seed, start_step=start_step, deterministic=True
            )
            return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]

        whole, resumed = batches(0, 12), batches(7, 5)
        other_seed = batches(0, 1, seed=1)
    for (x, y), (rx, ry) in zip(whole[7:], resumed, strict=True):
        np.testing.assert_array_equal(rx, x)  # same examples, same augmentation
        np.testing.assert_array_equal(ry, y)
    # Each pass is shuffled anew, and the seed matters.
    labels = np.concatenate([y for _, y in whole[:10]])
    assert not np.array_equal(labels[:40], labels[40:])
    assert not np.array_equal(whole[0][0], other_seed[0][0])


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(data.DatasetError, match="unknown TFDS dataset 'no_such_set'"):
        data.prepare("no_such_set")


def test_missing_imagenet_says_where_the_files_go(tmp_path):
    with pytest.raises(data.DatasetError) as info:
        data.prepare("imagenet2012", data_dir=str(tmp_path))
    message = str(info.value)
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert str(tmp_path / "downloads" / "manual") in message
    assert "\n" not in message


def test_fashion_mnist_uses_the_debian_files_when_present(monkeypatch, tmp_path):
    assert sources.default_manual_dir("fashion_mnist", "/mine") == "/mine"
    expected = sources.KNOWN_MANUAL_DIRS["fashion_mnist"]
    if os.path.isdir(expected):
        assert sources.default_manual_dir("fashion_mnist", None) == expected
    monkeypatch.setitem(
        sources.KNOWN_MANUAL_DIRS, "fashion_mnist", str(tmp_path / "none")
    )
    assert sources.default_manual_dir("fashion_mnist", None) is None
    assert sources.default_manual_dir("cifar10", None) is None


def test_dataset_without_labels_is_refused():
    builder = ml_collections.ConfigDict(
        {"name": "x", "info": {"features": {"image": 1}}}
    )
    with pytest.raises(data.DatasetError, match="only image classification"):
        data.dataset_info(builder, dataset_cfg("fashion_mnist"))
