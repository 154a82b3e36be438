"""Reliability (issue 7): divergence is caught, corrupt checkpoints are survived,
and bad input to an entry point is one line and exit status 2."""

import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from mock_cli import MOCK_VALIDATION, run_cli, run_in_process
from test_train import CONFIG_DIR, tiny_config, train_args

import bidense
from bidense.pretrained import compact
from bidense.training import checkpoints, errors, experiment, loop
from bidense.training import config as config_lib
from bidense.training import keras_internals as ki
from bidense.training import workdir as wd


def error_lines(stderr):
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_divergence_stops_train_py_with_one_line_and_status_1(tmp_path):
    """An absurd SGD learning rate really overflows the loss within epoch 1."""
    run = tmp_path / "run"
    # In-process (test_the_real_process_prints_one_line is train.py's process
    # test): an exception other than cli.fail's exit would fail this test.
    result = run_in_process(
        "train.py",
        *train_args(run, "--config.optimizer.name=sgd"),
        "--config.optimizer.learning_rate=1e38",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    errors = error_lines(result.stderr)
    assert errors[-1].startswith("train.py: error: loss is "), result.stderr[-2000:]
    assert "at epoch 1, step " in errors[-1] and "(global step " in errors[-1]
    # Nothing claims the run finished.
    assert not (run / wd.FINAL_MODEL).exists() and not (run / wd.SUMMARY).exists()


class Poison(tf.keras.callbacks.Callback):
    """Turns the weights into NaN after ``step``: the next step's loss is NaN."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            for weight in self.model.trainable_weights:
                weight.assign(tf.fill(weight.shape, np.nan))


def test_nan_names_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # 4 steps per epoch, a checkpoint every 2: saved at steps 2 and 4 (and at the
    # end of epoch 1); the NaN loss is at step 6, epoch 2's second step.
    cfg = tiny_config(checkpoint_every_steps=2, verbose=0)
    with tfds.testing.mock_data(
        num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        exp = experiment.setup(cfg, tmp_path)
        with pytest.raises(errors.NonFiniteLossError) as info:
            loop.train(exp, [Poison(step=5)])
    message = str(info.value)
    assert "\n" not in message
    assert "loss is nan at epoch 2, step 2/4 (global step 6)" in message
    latest = tf.train.latest_checkpoint(str(tmp_path / wd.CHECKPOINTS / "chief"))
    assert latest and latest in message
    reader = tf.train.load_checkpoint(latest)
    names = reader.get_variable_to_shape_map()
    assert int(reader.get_tensor(ki.ITERATIONS_KEY)) == 4
    for name in names:
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name  # the poison never got saved


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_run):
    run = tiny_run.copy(tmp_path / "run")
    args = [*tiny_run.args, "--workdir", run, "--config.verbose=0"]
    chief = run / wd.CHECKPOINTS / "chief"
    assert sorted(p.name for p in chief.glob("*.index")) == [
        "ckpt-1.index",
        "ckpt-2.index",
    ]  # one per epoch, and the previous one is kept
    (data,) = chief.glob("ckpt-2.data-*")
    data.write_bytes(data.read_bytes()[:100])  # as if the disk filled up

    # In-process: a crash would propagate as an exception, not print a traceback.
    result = run_in_process("train.py", *args, examples=tiny_run.examples)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"checkpoint {chief / 'ckpt-2'} is unreadable" in result.stderr
    assert f"resuming from checkpoint {chief / 'ckpt-1'}" in result.stderr
    assert (chief / f"{data.name}.corrupt").exists()  # kept for inspection
    # Epoch 2 was trained again, and counted once.
    summary = json.loads((run / wd.SUMMARY).read_text())
    assert summary["epochs"] == 2
    assert checkpoints.checkpoint_problem(str(chief / "ckpt-2")) is None  # rewritten

    # With every checkpoint damaged there is nothing to resume: one line, status 1.
    for data in chief.glob("ckpt-*.data-*"):
        if data.suffix != ".corrupt":
            data.write_bytes(b"")
    result = run_in_process("train.py", *args, examples=tiny_run.examples)
    assert result.returncode == 1
    assert "no readable checkpoint in" in error_lines(result.stderr)[-1]


def test_damaged_checkpoint_index_file_is_rebuilt(tmp_path):
    """The small ``checkpoint`` file itself garbled: the files are scanned."""
    variable = tf.Variable(1.0)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(v=variable), str(tmp_path), max_to_keep=2
    )
    manager.save()
    manager.save()
    (tmp_path / "checkpoint").write_text("model_checkpoint_path: \x00garbage")
    assert checkpoints.use_last_good_checkpoint(tmp_path) == str(tmp_path / "ckpt-2")
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-2")
    assert checkpoints.use_last_good_checkpoint(tmp_path / "empty") is None


STUDY = """from bidense.ablation import Study
VARIANTS = {{"a": Study(name="s", model="binary_resnet_e18", dataset="fashion_mnist",
    grid={{"scaling": ["none", "xnor"]}}, reference={{"scaling": "none"}}, {extra})}}
"""
DAMAGED = {
    # Recipes (train.py --config_file): Python the user wrote.
    "recipes/syntax.py": "def get_config(arg):\n    return (\n",
    "recipes/no_get_config.py": "CONFIG = 1\n",
    "recipes/raising.py": "def get_config(arg):\n    raise RuntimeError('boom')\n",
    "recipes/a_dict.py": "def get_config(arg):\n    return {'model_name': 'x'}\n",
    "recipes/no_module.py": "import no_such_module\n",
    "recipes/returns_none.py": "def get_config(arg):\n    pass\n",
    "recipes/no_argument.py": "def get_config():\n    pass\n",
    # Study files (ablate.py --study).
    "studies/syntax.py": "VARIANTS = {\n",
    "studies/empty.py": "",
    "studies/not_a_study.py": "VARIANTS = {'a': 1}\n",
    "studies/seeds_text.py": STUDY.format(extra="seeds='12'"),
    "studies/grid_list.py": STUDY.format(extra="seeds=(1, 2)").replace(
        '{"scaling": ["none", "xnor"]}', "[1, 2]"
    ),
    "studies/unknown_model.py": STUDY.format(extra="seeds=(1, 2)").replace(
        'model="binary_resnet_e18"', 'model="resnet50"'
    ),
    "studies/seeds_int.py": STUDY.format(extra="seeds=3"),
    "studies/config_list.py": STUDY.format(extra="config=[1]"),
    "studies/name_int.py": STUDY.format(extra="seeds=(1, 2)").replace(
        'name="s"', "name=3"
    ),
    "studies/good.py": STUDY.format(extra="seeds=(1, 2)"),
    # Files of a study's finished run (ablate.py --report_only reads them).
    "study_runs/summary_not_json/cells/scaling-none/seed1/summary.json": "{",
    "study_runs/summary_text/cells/scaling-none/seed1/summary.json": (
        '{"val_top1": null, "test_top1": "high", "test_top5": 1, "size_mib": 1, '
        '"ops": 1, "params": 1, "epochs": 1, "train_seconds": 1}'
    ),
    "study_runs/times_not_json/cells/scaling-none/seed1/ablate.json": "{",
}


def _tflite() -> bytes:
    """A valid flatbuffer, converted in a second (a ResNetE takes a minute)."""
    from larq_compute_engine import convert_keras_model

    inputs = tf.keras.Input((8, 8, 1))
    return convert_keras_model(
        tf.keras.Model(inputs, tf.keras.layers.Conv2D(2, 3)(inputs))
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Files for the bad-input table: foreign, damaged, truncated and empty ones."""
    root = tmp_path_factory.mktemp("inputs")
    model = bidense.create_model(
        "binary_resnet_e18", input_shape=(28, 28, 1), num_classes=10,
        filters=(8, 8, 16, 16),
    )  # fmt: skip
    model.save_weights(root / "resnet.h5")
    (root / "garbage.h5").write_text("not an HDF5 file")
    (root / "empty.h5").write_bytes(b"")
    (root / "a_file").write_text("not a directory")
    (root / "bad_run").mkdir()
    (root / "bad_run" / wd.FINAL_MODEL).write_bytes(b"PK\x03\x04 truncated")
    resnet_run = root / "resnet_run"
    resnet_run.mkdir()
    cfg = config_lib.load_recipe(CONFIG_DIR, "binary_resnet_e18", "fashion_mnist")
    (resnet_run / wd.CONFIG).write_text(config_lib.to_json(cfg))
    # A compact weights file cut short.
    compact.save(model, root / "whole.npz", {"model": "binary_resnet_e18"})
    whole = (root / "whole.npz").read_bytes()
    (root / "truncated.npz").write_bytes(whole[: len(whole) // 2])

    # Saved models: whole, cut short, empty, damaged inside the zip, weights only.
    models = root / "models"
    models.mkdir()
    model.save(models / "model.keras")
    keras = (models / "model.keras").read_bytes()
    (models / "truncated.keras").write_bytes(keras[: len(keras) // 2])
    (models / "empty.keras").write_bytes(b"")
    middle = len(keras) // 2  # inside the compressed weights: the CRC fails
    flipped = keras[:middle] + bytes(b ^ 0xFF for b in keras[middle:][:64])
    (models / "flipped.keras").write_bytes(flipped + keras[middle + 64 :])
    with zipfile.ZipFile(models / "model.keras") as whole:
        with zipfile.ZipFile(models / "no_config.keras", "w") as part:
            for name in whole.namelist():
                if name != "config.json":
                    part.writestr(name, whole.read(name))
    (models / "a_directory").mkdir()
    (models / "a_directory" / "notes.txt").write_text("not a SavedModel")

    # Flatbuffers: whole, cut short (LCE's interpreter crashed the process),
    # random bytes, empty, and a Keras model renamed.
    flatbuffer = _tflite()
    (models / "model.tflite").write_bytes(flatbuffer)
    (models / "truncated.tflite").write_bytes(flatbuffer[: len(flatbuffer) // 2])
    (models / "random.tflite").write_bytes(np.random.RandomState(0).bytes(4096))
    (models / "empty.tflite").write_bytes(b"")
    (models / "renamed.tflite").write_bytes(keras)

    # Work dirs whose config.json is damaged or foreign.
    for name, text in [("broken_config", "{"), ("list_config", "[1, 2]")]:
        (root / name).mkdir()
        (root / name / wd.CONFIG).write_text(text)
        (root / name / wd.FINAL_MODEL).write_bytes(keras)
    incomplete = json.loads(config_lib.to_json(cfg))
    del incomplete["dataset"]["preprocessing"]
    (root / "incomplete_config").mkdir()
    (root / "incomplete_config" / wd.CONFIG).write_text(json.dumps(incomplete))
    (root / "foreign").mkdir()  # e.g. a download folder with another config.json
    (root / "foreign" / wd.CONFIG).write_text('{"architectures": ["BertModel"]}')
    (root / "foreign" / "model.keras").write_bytes(keras)
    (root / "labels_run").mkdir()  # class names that do not fit the model
    (root / "labels_run" / wd.FINAL_MODEL).write_bytes(keras)
    (root / "labels_run" / "labels.txt").write_text("cat\ndog\n")

    # Finished-looking runs to fine-tune from: of another model, and of a
    # DenseNet of growth rate 8 (checked against the switches before loading).
    for name, model_name, changes in [
        ("resnet_weights_run", "binary_resnet_e18", []),
        ("densenet_run", "binary_densenet28", [("model.growth_rate", "8")]),
    ]:
        run_cfg = config_lib.load_recipe(CONFIG_DIR, model_name, "fashion_mnist")
        config_lib.apply_overrides(run_cfg, changes)
        (root / name).mkdir()
        (root / name / wd.CONFIG).write_text(config_lib.to_json(run_cfg))
        (root / name / wd.FINAL_MODEL).write_bytes(keras)

    for name, text in DAMAGED.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    summary = {"val_top1": 0.8, "test_top1": 0.8, "test_top5": 1, "size_mib": 1,
               "ops": 1, "params": 1, "epochs": 1, "train_seconds": 1}  # fmt: skip
    times_run = root / "study_runs/times_not_json/cells/scaling-none/seed1"
    (times_run / "summary.json").write_text(json.dumps(summary))
    _image_folders(root / "folders")
    return root


# Image folders (--dataset=PATH) a user might hand over: file -> what it holds.
# "png" is a real 8x8 PNG image, anything else the file's bytes.
IMAGE_FOLDERS = {
    "good/cats/{i}.png": "png",
    "good/dogs/{i}.png": "png",
    "one_class/cats/a.png": "png",
    "no_images/cats/a.png": "png",
    "no_images/dogs/notes.txt": b"a note, no image",
    "loose/a.png": "png",
    "mixed_splits/train/cats/a.png": "png",
    "mixed_splits/dogs/a.png": "png",
    "no_train/test/cats/a.png": "png",
    "test_differs/train/cats/a.png": "png",
    "test_differs/train/dogs/a.png": "png",
    "test_differs/test/cats/a.png": "png",
    "test_differs/test/birds/a.png": "png",
    "unreadable/cats/a.png": "png",
    "unreadable/dogs/a.png": b"\x89PNG\r\n\x1a\n truncated",
    "a_file.png": "png",
}


def _image_folders(root):
    png = tf.io.encode_png(np.full((8, 8, 1), 128, np.uint8)).numpy()
    for name, content in IMAGE_FOLDERS.items():
        for i in range(40) if "{i}" in name else [0]:
            path = root / name.format(i=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png if content == "png" else content)
    (root / "empty").mkdir()
    # A run trained on other classes than good/'s (cats, dogs).
    (root / "birds_run").mkdir()
    (root / "birds_run" / "labels.txt").write_text("birds\ncats\n")


DENSENET = ["--model", "binary_densenet28", "--dataset", "fashion_mnist"]
# The mock split has 64 examples: 16 of them validate.
TRAIN = [*DENSENET, "--config.batch_size=16", MOCK_VALIDATION]
EVAL_WEIGHTS = [*DENSENET, MOCK_VALIDATION, "--weights"]
EXPORT_TO = ["--output", "{root}/model.tflite"]
FOLDER = ["--model", "binary_densenet28", "--config.batch_size=16", "--dataset"]
FOLDERS = "{root}/folders"
EXPORT_DENSENET = ["--model", "binary_densenet28", *EXPORT_TO]
EXPORT_SMALL = [*EXPORT_DENSENET, "--input_size=32", "--num_classes=10"]

# (script, args, message in the last error line). {root} is the inputs fixture;
# train.py cases get a fresh --workdir unless they pass their own. Cases already
# in tests/test_train.py and tests/test_evaluate.py are not repeated here.
# absl's "did you mean" recursed once per character of an unknown flag name: a
# pasted run of dashes overflowed the stack (found by test_parsing_properties).
HUGE_FLAG = "-" * 3000 + "1"

BAD_INPUTS = [
    ("train.py", [*TRAIN, HUGE_FLAG], "unknown flag ----"),
    ("ablate.py", ["--study", "{root}/missing.py", HUGE_FLAG], "unknown flag ----"),
    ("export.py", [*EXPORT_DENSENET, HUGE_FLAG], "unknown flag ----"),
    ("train.py", [*TRAIN, "--strategy", "bogus"],
     "flag --strategy=bogus: value should be one of"),
    ("train.py", [*TRAIN, "--config.model.scaling=median"],
     "Invalid scaling='median'; choose one of"),
    ("train.py", [*TRAIN, "--config.=3"], "malformed override '--config.=3'"),
    ("train.py", [*TRAIN, "--config.epochs=two"], "config.epochs must be a number"),
    ("train.py", [*TRAIN, "--config.precision=bfloat16"],
     "config.precision must be one of float32, mixed_bfloat16, auto"),
    ("train.py", [*TRAIN, "--config.dataset.image_size=4"],
     "needs inputs of at least 8x8 pixels"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/missing.h5"],
     "missing.h5' does not exist"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/resnet.h5"],
     "resnet.h5' does not fit binary_densenet28"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/garbage.h5"],
     "garbage.h5' does not fit binary_densenet28"),
    ("train.py", [*TRAIN, "--workdir", "{root}/a_file"],
     "a_file exists and is not a directory"),
    ("train.py", [*TRAIN, "--workdir", "{root}/resnet_run"],
     "holds a run with another config"),
    ("evaluate.py", ["--checkpoint", "bogus", "--workdir", "{root}"],
     "flag --checkpoint=bogus: value should be one of <selected|best|final>"),
    ("evaluate.py", ["--model", "resnet50", "--weights", "w.h5"],
     "unknown model 'resnet50'"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5"],
     "resnet.h5' does not fit binary_densenet28"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/garbage.h5"],
     "garbage.h5' does not fit binary_densenet28"),
    ("evaluate.py", ["--workdir", "{root}/a_file"], "no bidense run in --workdir"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5", "--config.epoch=3"],
     "unknown config key config.epoch; did you mean config.epochs?"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5", "--batch_size=-1"],
     "flag --batch_size=-1: -1 is not a non-negative integer"),
    ("evaluate.py", ["--max_examples=abc"], "flag --max_examples=abc"),
    ("ablate.py", ["--study", "{root}/missing.py"], "no study file"),
    ("ablate.py", ["--study", "configs/studies/densenet_growth_vs_blocks.py",
                   "--variant", "nope", "--dry_run"], "has no variant 'nope'"),
    ("export.py", ["--workdir", "{root}/missing_run", *EXPORT_TO],
     "missing_run (no such directory)"),
    ("export.py", ["--workdir", "{root}", *EXPORT_TO], "no final.keras in --workdir"),
    ("export.py", ["--workdir", "{root}/bad_run", *EXPORT_TO],
     "bad_run/final.keras ("),
    ("export.py", ["--workdir", "{root}/bad_run", "--checkpoint=last", *EXPORT_TO],
     "flag --checkpoint=last: value should be one of <selected|best|final>"),
    ("export.py", [*EXPORT_DENSENET, "--converter=tflite"],
     "flag --converter=tflite: value should be one of <lean|keras>"),
    ("export.py", [*EXPORT_DENSENET, "--parity_images=all"],
     "flag --parity_images=all"),
    ("export.py", ["--model", "binary_densenet28"], "--output is required"),
    ("export.py", ["--model", "binary_densenet28", "--output", "{root}/no/m.tflite"],
     "/no/m.tflite: no directory"),
    ("export.py", ["--model", "binary_densenet28", "--output", "{root}"],
     "is a directory; give a file name"),
    # Image folders (--dataset=PATH; bidense.data.folders).
    ("train.py", [*FOLDER, f"{FOLDERS}/missing"],
     "folders/missing does not exist; give a folder with one folder of .jpg/.png "
     "images per class"),
    ("train.py", [*FOLDER, "photos/mine"],
     "no folder photos/mine in "),
    ("train.py", [*FOLDER, f"{FOLDERS}/a_file.png"], "a_file.png is a file"),
    ("train.py", [*FOLDER, f"{FOLDERS}/empty"], "folders/empty is empty; give it"),
    ("train.py", [*FOLDER, f"{FOLDERS}/one_class"],
     "one_class has 1 class folder (cats); a classifier needs two classes or more"),
    ("train.py", [*FOLDER, f"{FOLDERS}/no_images"],
     "no_images/dogs holds no .jpg, .jpeg or .png images; put the class's images"),
    ("train.py", [*FOLDER, f"{FOLDERS}/loose"],
     "loose holds images but no class folders; move each class's images"),
    ("train.py", [*FOLDER, f"{FOLDERS}/mixed_splits"],
     "mixes split folders (train) with other folders (dogs)"),
    ("train.py", [*FOLDER, f"{FOLDERS}/no_train"], "has test/ but no train/ folder"),
    ("train.py", [*FOLDER, f"{FOLDERS}/test_differs"],
     "hold different classes (only in test/: birds; only in train/: dogs)"),
    ("train.py", [*FOLDER, f"{FOLDERS}/unreadable"],
     "none of the 1 images in "),
    ("train.py", [*FOLDER, f"{FOLDERS}/good", "--config.dataset.channels=2"],
     "config.dataset.channels must be 0 (the images' own), 1 (grey) or 3 (RGB)"),
    ("train.py", [*FOLDER, f"{FOLDERS}/good", "--config.dataset.test_fraction=0",
                  "--config.dataset.validation_fraction=0"],
     "has nothing to test on (no test/ folder and config.dataset.test_fraction=0)"),
    ("train.py", [*FOLDER, f"{FOLDERS}/good", "--config.dataset.train_split=train[:9]"],
     "train_split='train[:9]': the folder"),
    ("train.py", [*FOLDER, f"{FOLDERS}/good", "--workdir", f"{FOLDERS}/birds_run"],
     "labels.txt names the classes the model was trained on ('birds', 'cats'), "
     "but"),
    ("ablate.py", ["--study", "configs/studies/resnet_e18_scaling.py", "--dataset",
                   f"{FOLDERS}/one_class"], "a classifier needs two classes or more"),
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/resnet.h5", "--dataset",
                     f"{FOLDERS}/empty"], "folders/empty is empty; give it"),
    ("evaluate.py", ["--model_path", "{root}/models/model.keras", "--dataset",
                     f"{FOLDERS}/one_class"], "a classifier needs two classes or more"),
    # export.py --int8 and the data it checks and calibrates on.
    ("export.py", [*EXPORT_DENSENET, "--int8"],
     "--int8 needs the model's training data to calibrate on: pass --dataset"),
    ("export.py", [*EXPORT_DENSENET, "--int8_io"], "--int8_io needs --int8"),
    ("export.py", [*EXPORT_DENSENET, "--int8_percentile=99.9"],
     "--int8_percentile needs --int8"),
    ("export.py", [*EXPORT_DENSENET, "--int8_finetune_steps=100"],
     "--int8_finetune_steps needs --int8"),
    ("export.py", [*EXPORT_DENSENET, "--int8", "--int8_finetune_learning_rate=1e-4"],
     "--int8_finetune_learning_rate needs --int8_finetune_steps"),
    ("export.py", [*EXPORT_DENSENET, "--int8", "--int8_finetune_steps=10",
                   "--int8_finetune_learning_rate=0"],
     "--int8_finetune_learning_rate must be positive"),
    ("export.py", [*EXPORT_DENSENET, "--int8", "--int8_finetune_steps=-1"],
     "flag --int8_finetune_steps=-1: -1 is not a non-negative integer"),
    ("export.py", [*EXPORT_DENSENET, "--int8", "--int8_percentile=40"],
     "flag --int8_percentile=40: 40.0 is not a number in the range [50.0, 100.0]"),
    ("export.py", ["--workdir", "{root}/models", "--dataset", "mnist", *EXPORT_TO],
     "--dataset cannot be combined with --workdir"),
    ("export.py", [*EXPORT_SMALL, "--int8", "--dataset", "fashion_mnist",
                   "--config.model.scaling=xnor"],
     "--int8 does not support scaling='xnor'"),
    ("export.py", [*EXPORT_SMALL, "--dataset", "no_such_dataset"],
     "unknown TFDS dataset 'no_such_dataset'"),
    ("export.py", [*EXPORT_SMALL, "--dataset", "fashion_mnist"],
     "dataset 'fashion_mnist' gives 28x28x1 images, the model takes 32x32x3"),
]  # fmt: skip

# Every file an entry point reads, damaged as a new user might hand it over
# (the inputs fixture makes them). Each must be one line with a hint.
EVAL = ["--dataset", "fashion_mnist"]
MODELS = "{root}/models"
REPORT = ["--study", "{root}/studies/good.py", "--report_only", "--workdir"]
BAD_FILES = [
    # evaluate.py --tflite: LCE's interpreter raises a RuntimeError on these and
    # crashes the process (segmentation fault) on a truncated file.
    ("evaluate.py", ["--tflite", f"{MODELS}/random.tflite", *EVAL],
     "random.tflite: not a TFLite flatbuffer (no 'TFL3' file identifier"),
    ("evaluate.py", ["--tflite", f"{MODELS}/empty.tflite", *EVAL],
     "empty.tflite: the file is empty; export the model again with export.py"),
    ("evaluate.py", ["--tflite", f"{MODELS}/truncated.tflite", *EVAL],
     "bytes that do not hold a whole model); export the model again with export.py"),
    ("evaluate.py", ["--tflite", f"{MODELS}/renamed.tflite", *EVAL],
     "it looks like a Keras model: evaluate that with --model_path"),
    ("evaluate.py", ["--tflite", f"{MODELS}/a_directory", *EVAL],
     "no .tflite file at"),
    # evaluate.py --model_path: .keras, .h5, SavedModel dir, other files.
    ("evaluate.py", ["--model_path", f"{MODELS}/truncated.keras", *EVAL],
     "truncated.keras (OSError: Unable to synchronously open file"),
    ("evaluate.py", ["--model_path", f"{MODELS}/empty.keras", *EVAL],
     "empty.keras: it is empty; give a model saved with model.save()"),
    ("evaluate.py", ["--model_path", f"{MODELS}/flipped.keras", *EVAL],
     "flipped.keras (BadZipFile: Bad CRC-32"),
    ("evaluate.py", ["--model_path", f"{MODELS}/no_config.keras", *EVAL],
     "no_config.keras (KeyError: \"There is no item named 'config.json'"),
    ("evaluate.py", ["--model_path", f"{MODELS}/a_directory", *EVAL],
     "a_directory (OSError: SavedModel file does not exist"),
    ("evaluate.py", ["--model_path", "{root}/garbage.h5", *EVAL],
     "garbage.h5 (OSError: Unable to synchronously open file"),
    ("evaluate.py", ["--model_path", "{root}/resnet.h5", *EVAL],
     "(it holds weights only); evaluate it with --model NAME --weights FILE"),
    ("evaluate.py", ["--model_path", f"{MODELS}/model.tflite", *EVAL],
     "model.tflite is a TFLite flatbuffer: evaluate it with --tflite"),
    # evaluate.py --weights, --workdir and the config.json beside a model.
    ("evaluate.py", [*EVAL_WEIGHTS, "{root}/empty.h5"],
     "empty.h5' does not fit binary_densenet28"),
    ("evaluate.py", ["--workdir", "{root}/resnet_run"],
     "no final.keras in --workdir"),
    ("evaluate.py", ["--workdir", "{root}/bad_run"], "no bidense run in --workdir"),
    ("evaluate.py", ["--workdir", "{root}/broken_config"],
     "config.json is not valid JSON (Expecting property name"),
    ("evaluate.py", ["--workdir", "{root}/list_config"],
     "config.json is not a train.py config (no dataset.name); train.py writes it"),
    ("evaluate.py", ["--workdir", "{root}/incomplete_config"],
     "config.json is not a complete train.py config (no dataset.preprocessing)"),
    ("evaluate.py", ["--model_path", "{root}/foreign/model.keras", *EVAL],
     "foreign/config.json is not a train.py config (no dataset.name)"),
    # train.py --config_file: a recipe is the user's Python.
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/syntax.py"],
     "cannot load recipe"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/no_get_config.py"],
     "no_get_config.py defines no get_config(dataset)"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/raising.py"],
     "raising.py: RuntimeError: boom"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/a_dict.py"],
     "returned dict, not a ConfigDict with model_name"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/no_module.py"],
     "ModuleNotFoundError: No module named 'no_such_module'"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/returns_none.py"],
     "returned NoneType, not a ConfigDict with model_name"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes/no_argument.py"],
     "no_argument.py: TypeError: get_config() takes 0 positional arguments"),
    ("train.py", [*TRAIN, "--config_file", "{root}/recipes"], "no recipe file"),
    # train.py --workdir with a damaged config.json; weights that are no file.
    ("train.py", [*TRAIN, "--workdir", "{root}/broken_config"],
     "has a damaged config.json (not a JSON object); rerun with --restart"),
    ("train.py", [*TRAIN, "--workdir", "{root}/list_config"],
     "has a damaged config.json (not a JSON object)"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/empty.h5"],
     "empty.h5' does not fit binary_densenet28"),
    # export.py --workdir and --weights.
    ("export.py", ["--workdir", "{root}/models", "--checkpoint=best", *EXPORT_TO],
     "no best.keras in --workdir"),
    ("export.py", [*EXPORT_DENSENET, "--weights", "{root}/resnet.h5"],
     "resnet.h5' does not fit binary_densenet28"),
    ("export.py", [*EXPORT_DENSENET, "--weights", "{root}/empty.h5"],
     "empty.h5' does not fit binary_densenet28"),
    # Fine-tuning (--config.model.weights, --config.finetune).
    ("train.py", [*TRAIN, "--config.model.weights={root}/truncated.npz"],
     "truncated.npz': cannot read"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/resnet_weights_run"],
     "holds binary_resnet_e18 weights; fine-tune from weights of binary_densenet28"),
    ("train.py", [*TRAIN, "--config.model.weights={root}/densenet_run",
                  "--config.model.growth_rate=16"],
     "were trained with growth_rate=8, not growth_rate=16"),
    ("train.py", ["--model", "binary_resnet_e34", "--dataset", "fashion_mnist",
                  "--config.model.weights=fashion_mnist"],
     "No Fashion-MNIST weights are shipped for binary_resnet_e34; they exist for: "
     "binary_densenet28, binary_resnet_e18"),
    ("evaluate.py", ["--model", "binary_resnet_e34", "--dataset", "fashion_mnist",
                     "--weights", "fashion_mnist"],
     "No Fashion-MNIST weights are shipped for binary_resnet_e34"),
    ("train.py", [*TRAIN, "--config.model.weights=fashion_mnist",
                  "--config.model.growth_rate=8"],
     "were trained with growth_rate=16, not growth_rate=8"),
    ("train.py", [*TRAIN, "--config.finetune.freeze_epochs=1"],
     "config.finetune.freeze_epochs needs config.model.weights"),
    ("train.py", [*TRAIN, "--config.dataset.classes=(0,12)"],
     "fashion_mnist has no label 12 (its labels are 0..9)"),
    ("export.py", ["--workdir", "{root}/labels_run", *EXPORT_TO],
     "labels.txt has 2 class names for a model with 10 outputs; restore it, or "
     "delete it to export without class names"),
    # ablate.py --study: Python the user wrote, and what it defines.
    ("ablate.py", ["--study", "{root}/studies/syntax.py"],
     "syntax.py: SyntaxError"),
    ("ablate.py", ["--study", "{root}/studies/empty.py"], "defines no VARIANTS"),
    ("ablate.py", ["--study", "{root}/studies/not_a_study.py"],
     "VARIANTS['a'] is not a Study"),
    ("ablate.py", ["--study", "{root}/studies/seeds_text.py"],
     "seeds must be integers, got '12'"),
    ("ablate.py", ["--study", "{root}/studies/grid_list.py"],
     "grid must be a dict"),
    ("ablate.py", ["--study", "{root}/studies/unknown_model.py"],
     "unknown model 'resnet50'"),
    ("ablate.py", ["--study", "{root}/studies/seeds_int.py"],
     "seeds must be integers, got 3"),
    ("ablate.py", ["--study", "{root}/studies/config_list.py"],
     "study config must be a dict, got [1]"),
    ("ablate.py", ["--study", "{root}/studies/name_int.py"],
     "study name must be a str, got 3"),
    ("ablate.py", ["--study", "{root}/studies"], "no study file"),
    # ablate.py --report_only: the files of the study's runs.
    ("ablate.py", [*REPORT, "{root}/study_runs/summary_not_json"],
     "seed1/summary.json is damaged (not a JSON object); delete it and rerun"),
    ("ablate.py", [*REPORT, "{root}/study_runs/summary_text"],
     "seed1/summary.json is damaged (no number for test_top1)"),
    ("ablate.py", [*REPORT, "{root}/study_runs/times_not_json"],
     "seed1/ablate.json is damaged; delete it"),
]  # fmt: skip


def run_bad_input(script, args, root, workdir):
    args = [a.format(root=root) for a in args]
    if script == "train.py" and "--workdir" not in args:
        args += ["--workdir", str(workdir)]
    if script == "ablate.py" and "--workdir" not in args:
        args += ["--workdir", str(workdir)]
    mock = script in ("train.py", "evaluate.py")
    return run_in_process(script, *args, mock=mock)


@pytest.mark.parametrize(
    "script, args, message",
    BAD_INPUTS + BAD_FILES,
    ids=[f"{s}:{m[:30]}" for s, _, m in BAD_INPUTS + BAD_FILES],
)
def test_bad_input_to_an_entry_point_is_one_line_and_status_2(
    tmp_path, monkeypatch, inputs, script, args, message
):
    """In-process: the entry point's own parsing and main (mock_cli.run_in_process).

    Anything but the one-line exit would escape as an exception (a traceback in
    a real process); test_the_real_process_prints_one_line runs real processes.
    """
    monkeypatch.chdir(CONFIG_DIR.parent)  # relative paths, as from the repository
    workdir = tmp_path / "run"
    result = run_bad_input(script, args, inputs, workdir)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = error_lines(result.stderr)
    assert errors and errors[-1].startswith(f"{script}: error: "), result.stderr
    assert message in errors[-1], errors[-1]
    # A failed setup does not claim the work dir (the fixed command needs no
    # --restart), and nothing is written.
    assert not (workdir / wd.CONFIG).exists()
    assert not (inputs / "model.tflite").exists()


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("train.py", ["--model", "resnet50", "--workdir", "{root}/run"],
         "train.py: error: unknown model 'resnet50'; choose one of: "),
        ("evaluate.py", ["--workdir", "/nonexistent/run"],
         "evaluate.py: error: no bidense run in --workdir /nonexistent/run "
         "(/nonexistent/run/config.json missing)"),
        ("export.py", ["--model", "binary_densenet99", *EXPORT_TO],
         "export.py: error: Unknown model 'binary_densenet99'; choose one of: "),
        ("ablate.py", ["--study", "{root}/missing.py"],
         "ablate.py: error: no study file "),
    ],
    ids=["train.py", "evaluate.py", "export.py", "ablate.py"],
)  # fmt: skip
def test_the_real_process_prints_one_line(tmp_path, script, args, message):
    """One real process per entry point: exactly one line on stderr, status 2."""
    args = [a.format(root=tmp_path) for a in args]
    result = run_cli(script, *args, check=False, mock=False)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-2000:]
    assert not result.stdout
