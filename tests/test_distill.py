"""Knowledge distillation: the loss, the frozen teacher, what gets saved."""

import math

import numpy as np
import pytest
import tensorflow as tf

import bidense
from bidense.training import distill

TINY = {"growth_rate": 8, "initial_filters": 8, "blocks": (1, 1, 1, 1)}


def test_loss_on_a_toy_batch_matches_a_hand_computed_value():
    labels = np.array([0, 2])
    student = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]], np.float32)
    teacher = np.array([[1.0, 1.0, 0.0], [0.0, -1.0, 3.0]], np.float32)
    alpha, temperature = 0.7, 2.0

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    expected = []
    for label, s, t in zip(labels, student, teacher, strict=True):
        ce = -math.log(softmax(s)[label])
        ps, pt = softmax(s / temperature), softmax(t / temperature)
        kl = sum(q * math.log(q / p) for p, q in zip(ps, pt, strict=True))
        expected.append((1 - alpha) * ce + alpha * temperature**2 * kl)

    got = distill.distillation_loss(
        labels, student, teacher, alpha=alpha, temperature=temperature
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_alpha_zero_is_plain_cross_entropy_and_equal_logits_add_nothing():
    labels = np.array([1, 0, 3])
    logits = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    ce = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, True)
    hard = distill.distillation_loss(
        labels, logits, logits * 3, alpha=0.0, temperature=4
    )
    np.testing.assert_allclose(hard.numpy(), ce.numpy(), rtol=1e-6)
    # KL(p || p) = 0: a student equal to its teacher only feels the hard term.
    same = distill.distillation_loss(labels, logits, logits, alpha=0.5, temperature=3)
    np.testing.assert_allclose(same.numpy(), 0.5 * ce.numpy(), rtol=1e-5)


def test_logits_model_stops_before_the_softmax_and_shares_weights():
    model = bidense.create_model(
        "binary_densenet28", input_shape=(16, 16, 1), num_classes=5, **TINY
    )
    logits = distill.logits_model(model)
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(
        tf.nn.softmax(logits(x)).numpy(), model(x).numpy(), atol=1e-6
    )
    assert {id(w) for w in logits.weights} <= {id(w) for w in model.weights}


def _models():
    tf.keras.utils.set_random_seed(0)
    kwargs = dict(input_shape=(16, 16, 1), num_classes=4, **TINY)
    student = bidense.create_model("binary_densenet28", **kwargs)
    teacher = bidense.create_model("binary_densenet28", binary=False, **kwargs)
    return student, teacher


def _data(n=32):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 16, 16, 1)).astype(np.float32)
    return x, rng.integers(0, 4, size=n)


def test_distiller_trains_the_student_only_and_checkpoints_no_teacher(tmp_path):
    student, teacher = _models()
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    student_before = [w.numpy().copy() for w in student.trainable_weights]
    model = distill.Distiller(student, teacher, alpha=0.5, temperature=4.0)
    model.compile(
        tf.keras.optimizers.Adam(1e-2),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert np.isfinite(history.history["loss"]).all()
    for before, weight in zip(teacher_before, teacher.weights, strict=True):
        np.testing.assert_array_equal(before, weight.numpy())  # frozen
    changed = [
        not np.array_equal(before, weight.numpy())
        for before, weight in zip(
            student_before, student.trainable_weights, strict=True
        )
    ]
    assert all(changed)

    # The checkpoint of the fitted model holds the student and the optimizer.
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "ckpt")
    )
    stored = [
        name
        for name, _ in tf.train.list_variables(prefix)
        if name.startswith("model/") and "OPTIMIZER_SLOT" not in name
    ]
    # The twin has as many weights as the student: with it, this would double.
    assert len(teacher.weights) == len(student.weights)
    assert len(stored) == len(student.weights)
    assert all(name.startswith("model/student/") for name in stored)

    # Evaluation is the student's plain cross-entropy and accuracy.
    results = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    probabilities = student.predict(x, verbose=0)
    ce = tf.keras.losses.sparse_categorical_crossentropy(y, probabilities)
    assert results["loss"] == pytest.approx(float(np.mean(ce)), rel=1e-5)
    accuracy = np.mean(np.argmax(probabilities, -1) == y)
    assert results["accuracy"] == pytest.approx(accuracy)


def test_distiller_gradient_is_the_distillation_loss_gradient():
    student, teacher = _models()
    model = distill.Distiller(student, teacher, alpha=0.8, temperature=2.0)
    lr = 1e-2
    model.compile(tf.keras.optimizers.SGD(lr))
    x, y = _data(8)
    expected_logits = distill.logits_model(student)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            distill.distillation_loss(
                y,
                expected_logits(x, training=True),
                distill.logits_model(teacher)(x, training=False),
                alpha=0.8,
                temperature=2.0,
            )
        )
    expected = tape.gradient(loss, student.trainable_weights)
    before = [w.numpy().copy() for w in student.trainable_weights]
    # The tape's forward pass moved BN's moving statistics, which the training
    # step does not read (training-mode BN uses the batch's statistics).
    model.train_on_batch(x, y)
    for b, w, g in zip(before, student.trainable_weights, expected, strict=True):
        np.testing.assert_allclose(
            (b - w.numpy()) / lr, g.numpy(), rtol=2e-2, atol=1e-4
        )


def test_teacher_of_another_shape_or_class_count_is_a_one_line_error(tmp_path):
    _, teacher = _models()
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    with pytest.raises(distill.TeacherError, match=r"inputs of shape \(16, 16, 1\)"):
        distill.load_teacher(path, (28, 28, 1), 4)
    with pytest.raises(distill.TeacherError, match="predicts 4 classes.*has 10"):
        distill.load_teacher(path, (16, 16, 1), 10)
    assert distill.load_teacher(path, (16, 16, 1), 4).output_shape == (None, 4)


def test_a_work_dir_teacher_is_its_best_model_else_its_final_model(tmp_path):
    (tmp_path / "final.keras").write_bytes(b"final")
    assert distill.teacher_path(tmp_path) == tmp_path / "final.keras"
    (tmp_path / "best.keras").write_bytes(b"best")
    assert distill.teacher_path(tmp_path) == tmp_path / "best.keras"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.keras", "does not exist"),
        (lambda d: d, "without best.keras or final.keras"),
        (lambda d: _write(d / "junk.keras", b"not a model"), "cannot load the teacher"),
    ],
)
def test_bad_teacher_paths_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(distill.TeacherError, match=message) as info:
        distill.load_teacher(make(tmp_path), (16, 16, 1), 4)
    assert "\n" not in str(info.value)


def _write(path, data):
    path.write_bytes(data)
    return path


def test_train_py_records_the_teacher_by_its_absolute_path(tmp_path, monkeypatch):
    """A relative teacher (as ablate.py's study files give it) is recorded
    absolute, so results rows find its wall time from any directory."""
    from mock_cli import entry_point

    monkeypatch.chdir(tmp_path)
    train = entry_point("train.py")
    args = train.COMMAND.parse(
        ["train.py", "--model", "binary_densenet28", "--workdir", "run",
         "--config.distill.teacher=runs/teacher"]
    )  # fmt: skip
    cfg = train.resolve_config(args)
    assert cfg.distill.teacher == str(tmp_path / "runs" / "teacher")
