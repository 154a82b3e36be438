"""Knowledge distillation: a binary student matches a frozen teacher's outputs.

Hinton, Vinyals and Dean 2015 ("Distilling the Knowledge in a Neural Network"):
the student minimises

    (1 - alpha) * CE(labels, student) + alpha * T^2 * KL(teacher_T || student_T)

where ``p_T = softmax(logits / T)``; the ``T^2`` keeps the soft term's gradients
on the scale of the hard term's as ``T`` grows. Output matching of this kind is
the last stage of Real-to-Binary (Martinez et al. 2020), which larq-zoo's
multi-stage experiments reproduce, and the usual way to close part of a BNN's gap
to its full-precision twin (``binary=False``), the natural teacher: the same
graph, so the same input shape and classes.

The teacher runs in the student's training step (frozen, inference mode) and is
never tracked by the student's checkpoints or saved models: :class:`Distiller`
keeps it out of Keras's object tracking, so a checkpoint holds the student and
its optimizer only, and ``best.keras``/``final.keras`` are the bare student.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


class TeacherError(ValueError):
    """The teacher cannot be used for this student; one-line message."""


def distillation_loss(labels, student_logits, teacher_logits, *, alpha, temperature):
    """Per-example ``(1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)``.

    Computed in float32 whatever the compute dtype (bfloat16 logits lose the
    small log-probabilities the KL term is made of).
    """
    student = tf.cast(student_logits, tf.float32)
    teacher = tf.cast(teacher_logits, tf.float32)
    hard = tf.keras.losses.sparse_categorical_crossentropy(
        labels, student, from_logits=True
    )
    log_student = tf.nn.log_softmax(student / temperature, axis=-1)
    log_teacher = tf.nn.log_softmax(teacher / temperature, axis=-1)
    soft = tf.reduce_sum(tf.exp(log_teacher) * (log_teacher - log_student), axis=-1)
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


def logits_model(model: tf.keras.Model) -> tf.keras.Model:
    """The same layers (shared weights) ending before the final softmax, if any.

    bidense heads end in a float32 ``Activation("softmax")``; the temperature
    must divide the logits, not the probabilities.
    """
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if getattr(activation, "__name__", "") != "softmax":
        return model
    if isinstance(last, tf.keras.layers.Activation):
        return tf.keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    raise TeacherError(
        f"model {model.name!r} ends in a layer with a built-in softmax "
        f"({last.name}); distillation needs its logits: end it with "
        "Dense(num_classes) followed by Activation('softmax')"
    )


class _Hidden:
    """Holds a model (or metric) out of sight of Keras's attribute tracking.

    A Keras model tracks every layer or model assigned to one of its attributes
    (and so saves it in checkpoints); it does not look inside a plain object.
    """

    def __init__(self, model: tf.keras.Model):
        self.value = model


class Distiller(tf.keras.Model):
    """Trains ``student`` against ``teacher``; predicts and evaluates as the student.

    ``fit`` optimises :func:`distillation_loss`; evaluation reports the student's
    plain cross-entropy, so validation losses compare with undistilled runs.
    Compile with the optimizer and the metrics only (no loss): the loss is this
    class's.
    """

    def __init__(self, student, teacher, *, alpha: float, temperature: float):
        super().__init__(name=f"{student.name}_distiller")
        self.student = student
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        teacher.trainable = False
        self._teacher = _Hidden(logits_model(teacher))
        # The student's own layers and weights, stopping before its softmax.
        self._student_logits = _Hidden(logits_model(student))
        # A running mean, not state: kept out of checkpoints like Keras's own
        # compiled metrics.
        self._loss = _Hidden(tf.keras.metrics.Mean(name="loss"))

    @property
    def metrics(self):
        return [self._loss.value, *super().metrics]

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def train_step(self, data):
        images, labels = data[0], data[1]
        teacher_logits = tf.stop_gradient(self._teacher.value(images, training=False))
        with tf.GradientTape() as tape:
            logits = self._student_logits.value(images, training=True)
            per_example = distillation_loss(
                labels,
                logits,
                teacher_logits,
                alpha=self.alpha,
                temperature=self.temperature,
            )
            # Averaged over the global batch, so replicas' gradients sum right.
            loss = tf.nn.compute_average_loss(per_example)
            if self.student.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.student.losses))
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        self._loss.value.update_state(per_example)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        self.compiled_metrics.update_state(labels, probabilities)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        images, labels = data[0], data[1]
        probabilities = tf.cast(self.student(images, training=False), tf.float32)
        self._loss.value.update_state(
            tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities)
        )
        self.compiled_metrics.update_state(labels, probabilities)
        return {metric.name: metric.result() for metric in self.metrics}


def teacher_path(source: str | Path) -> Path:
    """The model file of ``source``: a ``.keras``/``.h5`` file or a train.py work dir.

    A work dir gives its ``best.keras`` (selected on validation), else its
    ``final.keras``.
    """
    path = Path(source)
    if path.is_dir():
        for name in ("best.keras", "final.keras"):
            if (path / name).is_file():
                return path / name
        raise TeacherError(
            f"config.distill.teacher={str(source)!r} is a directory without "
            "best.keras or final.keras; give a finished train.py work dir or a "
            ".keras file"
        )
    if not path.is_file():
        raise TeacherError(
            f"config.distill.teacher={str(source)!r} does not exist; give a "
            "finished train.py work dir or a .keras file"
        )
    return path


def load_teacher(source: str | Path, input_shape, num_classes: int) -> tf.keras.Model:
    """Loads the teacher and checks it fits a student of this input and classes."""
    import bidense  # noqa: F401  (registers bidense's layers for deserialization)

    path = teacher_path(source)
    try:
        teacher = tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad file
        text = str(error).strip().splitlines()
        reason = text[0] if text else type(error).__name__
        raise TeacherError(
            f"cannot load the teacher {path} ({reason[:200]}); give a .keras file "
            "saved by train.py"
        ) from None
    teacher_input = tuple(teacher.input_shape[1:])
    if teacher_input != tuple(input_shape):
        raise TeacherError(
            f"the teacher {path} takes inputs of shape {teacher_input}, the "
            f"student {tuple(input_shape)}; distill from a teacher trained on the "
            "same data and image size"
        )
    classes = teacher.output_shape[-1]
    if classes != num_classes:
        raise TeacherError(
            f"the teacher {path} predicts {classes} classes, the dataset has "
            f"{num_classes}; distill from a teacher trained on the same dataset"
        )
    return teacher
