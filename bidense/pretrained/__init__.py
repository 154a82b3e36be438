"""Weights trained by bidense, shipped with the package, and their file format.

``fashion_mnist/`` holds one compact weights file per model
(:mod:`bidense.pretrained.compact`), pinned by sha256 in
:data:`bidense.weights.FASHION_MNIST_WEIGHTS`; ``python -m bidense.pretrained``
writes such a file from a train.py work dir and prints its table entry.
"""
