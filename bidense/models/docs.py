"""The argument documentation shared by every builder (one text, not six copies)."""

BUILDER_DOC = """\
    Keras-applications-style builder; every argument is keyword-only.

    Args:
        input_shape: (height, width, channels); default (224, 224, 3). Height and
            width may be None (the head then uses global average pooling).
        input_tensor: optional Keras tensor to use as the model's input.
        include_top: whether to add average pooling, the FP dense layer and softmax.
        weights: None (random init), "imagenet" (larq-zoo's published weights,
            sha256-pinned; needs the larq-zoo-compatible configuration, which is
            the default except pad_value, set to 0.0 automatically),
            "fashion_mnist" (bidense's own weights, shipped and sha256-pinned in
            ``bidense.weights.FASHION_MNIST_WEIGHTS``; their switches, 28x28x1
            input and 10 classes are the defaults), the path of a weights file
            or a train.py work dir. For another head or input size, build
            without weights and use ``bidense.transfer.load_pretrained``.
        num_classes: classes of the top layer; default 1000 (10 with
            weights="fashion_mnist").
{family_args}
        binary: False builds the full-precision twin: same graph, no quantizers
            or weight clipping, ``fp_activation`` where the sign was.
        fp_activation: the twin's nonlinearity: "relu" (default), "hard_tanh",
            "tanh" or "linear".
        scaling: "none" (default; the paper finds scaling factors do not help),
            "xnor" (XNOR-Net: mean |W| per output channel and the activation
            magnitude map K) or "magnitude" (Bi-Real's scaled weights).
        gradient: "ste" (default; straight-through, cancelled where
            |x| > clip_value) or "approx_sign" (Bi-Real's ApproxSign).
        clip_value: weight clip and gradient-cancel threshold; default
            {clip_value} (larq-zoo).
        pad_value: what binary convs pad with: 1.0 (default; lets LCE fuse ops and
            skip edge correction), 0.0 (larq-zoo; chosen automatically with
            weights="imagenet") or -1.0 (the authors' BMXNet code).
        stem: "imagenet" (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or "cifar"
            (one 3x3/1 conv); default from the input: CIFAR below 50 pixels.

    Returns:
        A ``tf.keras.Model`` whose ``name`` is the registry name.

    Raises:
        ValueError: for an invalid argument (the message names it and the valid
            choices), an input smaller than the architecture allows, or a
            weights file that is missing or does not fit.
"""
