"""tf.distribute strategies by name.

* ``default``: the current (single-device) strategy.
* ``mirrored``: synchronous data parallelism over the local GPUs (or logical CPUs).
* ``multi_worker``: synchronous data parallelism over machines described by the
  ``TF_CONFIG`` environment variable (one process per machine).
* ``tpu``: a Cloud TPU, found by ``tpu_address`` (empty = the local TPU VM).

The batch size in a recipe is always the *global* batch size, as in larq-zoo.
"""

from __future__ import annotations

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str, tpu_address: str = "") -> tf.distribute.Strategy:
    """Creates the strategy; call it before any other TensorFlow op."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable "
                "(cluster and task of this worker)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=tpu_address
            )
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ValueError(f"no TPU found ({first})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}"
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the work directory's shared artifacts."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return strategy.cluster_resolver.task_type in (None, "chief") or (
            strategy.cluster_resolver.task_type == "worker"
            and strategy.cluster_resolver.task_id == 0
            and "chief" not in strategy.cluster_resolver.cluster_spec().as_dict()
        )
    return True
