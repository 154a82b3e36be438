"""Image folders as datasets (``--dataset=PATH``), on real Fashion-MNIST images.

The fixture writes 3 classes x 40 Fashion-MNIST images as PNG and JPEG files
(a few of them at 36x36 instead of 28x28), from TFDS's ``fashion_mnist``, which
bidense prepares from Debian's ``dataset-fashion-mnist`` (CI installs it).
Bad folders are rows of tests/test_reliability.py's bad-input table.
"""

import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from mock_cli import run_in_process
from PIL import Image
from test_train import tiny_config

from bidense import data
from bidense.data import sources
from bidense.training import experiment, recipes
from bidense.training import workdir as wd

REPO = Path(__file__).resolve().parent.parent
FILES = sources.KNOWN_MANUAL_DIRS["fashion_mnist"]
pytestmark = pytest.mark.skipif(
    not os.path.isdir(FILES) and not os.environ.get("CI"),
    reason=f"needs {FILES} (apt-get install dataset-fashion-mnist)",
)

# Fashion-MNIST labels -> class folder names (TFDS's names hold a "/").
CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}
PER_CLASS = 40
TINY = [
    "--model", "binary_densenet28", "--config.batch_size=16",
    "--config.model.growth_rate=8", "--config.model.initial_filters=8",
    "--config.model.blocks=(1,1,1,1)", "--config.verbose=0",
]  # fmt: skip


def write_folder(root: Path) -> Path:
    """3 classes x 40 images: every 4th a JPEG, every 10th 36x36 (mixed sizes)."""
    builder = data.prepare("fashion_mnist")
    ds = builder.as_dataset(split="train[:2000]", as_supervised=True)
    written = dict.fromkeys(CLASSES, 0)
    for image, label in ds.as_numpy_iterator():
        if label not in CLASSES or written[label] == PER_CLASS:
            continue
        i = written[label]
        written[label] += 1
        picture = Image.fromarray(image[..., 0])
        if i % 10 == 9:
            picture = picture.resize((36, 36), Image.BILINEAR)
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{i:03d}.{'jpg' if i % 4 == 3 else 'png'}")
    assert all(n == PER_CLASS for n in written.values()), written
    return root


@pytest.fixture(scope="module")
def fmnist_folder(tmp_path_factory):
    """ROOT/<class>/*.png|jpg: the flat layout (read-only: copy to change it)."""
    return write_folder(tmp_path_factory.mktemp("folders") / "fashion")


def open_folder(path, **changes):
    """(source, info) as train.py gets them, with dataset overrides."""
    cfg = recipes.dataset_config(str(path)).dataset
    with cfg.unlocked():
        cfg.update(changes)
    source = data.prepare(str(path))
    return source, data.dataset_info(source, cfg), cfg


def split_keys(source, validation=0.1, test=0.1):
    """split -> set of "<class>/<file>" of that split."""
    assigned = source.assign(validation, test)
    return {
        split: {image.key for images in by_class.values() for image in images}
        for split, by_class in assigned.items()
    }


def test_train_evaluate_and_export_a_folder(fmnist_folder, tmp_path, monkeypatch):
    """train.py on a relative path, then evaluate.py and export.py on the run.

    One epoch of a tiny model: what is checked is that the folder's splits and
    names reach every entry point, not what the model learns.
    """
    monkeypatch.chdir(fmnist_folder.parent)
    run = tmp_path / "run"
    args = [*TINY, "--dataset", "./fashion", "--workdir", run, "--config.epochs=1"]
    result = run_in_process("train.py", *args, mock=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / data.LABELS_FILE).read_text() == "bag\nsneaker\ntrouser\n"
    config = json.loads((run / wd.CONFIG).read_text())
    assert config["dataset"]["name"] == str(fmnist_folder)  # absolute
    summary = json.loads((run / wd.SUMMARY).read_text())
    source, info, _ = open_folder(fmnist_folder)
    assert summary["dataset"] == str(fmnist_folder)
    assert summary["test_examples"] == info.test_examples > 0
    assert summary["validation_examples"] == info.validation_examples > 0
    assert info.train_examples + info.validation_examples + info.test_examples == 120
    assert info.image_shape == (28, 28, 1)  # 28x28 is the most common size
    # Mixed sizes were trained on: some 36x36 images are in the training split.
    assert any(
        image.shape[:2] == (36, 36)
        for images in source.assign(0.1, 0.1)["train"].values()
        for image in images
    )

    # evaluate.py finds the folder through config.json, from another directory.
    monkeypatch.chdir(tmp_path)
    result = run_in_process("evaluate.py", "--workdir", run, mock=False)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads((run / "eval_best.json").read_text())
    assert row["examples"] == info.test_examples
    assert row["top1"] == pytest.approx(summary["test_top1"], abs=1e-6)
    # Another folder is not the run's dataset (the same one named another way
    # is: test_names_that_are_folders).
    other = run_in_process(
        "evaluate.py", "--workdir", run, "--dataset", "./elsewhere", mock=False
    )
    assert other.returncode == 2 and "differs from the run's dataset" in other.stderr

    result = run_in_process(
        "export.py", "--workdir", run, "--output", run / "model.tflite",
        "--parity_images=0", mock=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_in_process("evaluate.py", "--tflite", run / "model.tflite", mock=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "eval_tflite.json").read_text())["examples"] == (
        info.test_examples
    )

    # A class folder added since: evaluating refuses, in one line (resuming
    # too: a row of test_reliability.py's bad-input table).
    changed = tmp_path / "changed"
    shutil.copytree(fmnist_folder, changed)
    shutil.copytree(changed / "bag", changed / "coat")
    config["dataset"]["name"] = str(changed)
    (run / wd.CONFIG).write_text(json.dumps(config))
    result = run_in_process("evaluate.py", "--workdir", run, mock=False)
    assert result.returncode == 2
    assert "labels.txt names the classes the model was trained on" in result.stderr
    assert "'coat'" in result.stderr


def test_the_carve_is_deterministic_disjoint_and_stable(fmnist_folder, tmp_path):
    first, second = (split_keys(data.prepare(str(fmnist_folder))) for _ in range(2))
    assert first == second
    train, validation, test = first["train"], first["validation"], first["test"]
    assert not (train & validation or train & test or validation & test)
    assert len(train | validation | test) == 3 * PER_CLASS
    assert validation and test
    # The same split, image for image, as the pipeline reads it.
    source, info, cfg = open_folder(fmnist_folder)
    labels = [
        np.concatenate([y for _, y in data.eval_dataset(source, split, info, cfg, 8)])
        for split in (info.splits.test, info.splits.test)
    ]
    np.testing.assert_array_equal(*labels)
    # Adding images moves no other image to another split.
    grown = tmp_path / "grown"
    shutil.copytree(fmnist_folder, grown)
    for name in ("extra1.png", "extra2.png", "extra3.png"):
        shutil.copy(grown / "bag" / "000.png", grown / "bag" / name)
    after = split_keys(data.prepare(str(grown)))
    for split, keys in first.items():
        assert keys <= after[split], split
    # Larger fractions carve more; the test carve does not depend on validation's.
    more = split_keys(data.prepare(str(fmnist_folder)), validation=0.3, test=0.1)
    assert more["test"] == test and more["validation"] > validation


def test_split_folders_are_used_as_they_are(fmnist_folder, tmp_path):
    root = tmp_path / "splits"
    for cls in CLASSES.values():
        files = sorted((fmnist_folder / cls).iterdir())
        for split, chosen in (("train", files[:30]), ("test", files[30:])):
            (root / split / cls).mkdir(parents=True)
            for f in chosen:
                shutil.copy(f, root / split / cls / f.name)
    source, info, _ = open_folder(root)
    assert source.split_folders == ("train", "test")
    assert info.test_examples == 30  # the test folder, whole
    # Validation is carved from train/ only.
    assert info.validation_examples + info.train_examples == 90
    assert info.splits == data.Splits("train", "validation", "test")
    # A validation folder: used as it is, nothing carved from train/.
    for cls in CLASSES.values():
        shutil.copytree(root / "test" / cls, root / "validation" / cls)
    source, info, _ = open_folder(root)
    assert (info.train_examples, info.validation_examples) == (90, 30)
    # Selection off: no validation split, the validation folder unused.
    _, info, _ = open_folder(root, validation_split="")
    assert info.splits.validation is None and info.train_examples == 90


def test_grey_and_rgb_conversion(fmnist_folder, tmp_path):
    _, info, cfg = open_folder(fmnist_folder, channels=3)
    assert info.image_shape == (28, 28, 3)
    assert data.model_input_shape(info, cfg) == (28, 28, 3)
    source = data.prepare(str(fmnist_folder))
    info = data.dataset_info(source, cfg)
    images, _ = next(iter(data.eval_dataset(source, info.splits.test, info, cfg, 8)))
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey as RGB

    mixed = tmp_path / "mixed"
    shutil.copytree(fmnist_folder, mixed)
    for f in sorted(mixed.glob("*/*.png"))[::5]:  # grey content, red-tinted
        rgb = np.array(Image.open(f).convert("RGB"))
        rgb[..., 0] = np.maximum(rgb[..., 0], 128)
        Image.fromarray(rgb).save(f)
    source, info, cfg = open_folder(mixed)
    assert info.image_shape[-1] == 3  # one RGB image makes the folder RGB
    images, _ = next(iter(data.train_dataset(source, info, cfg, 16, seed=0)))
    assert images.shape == (16, 28, 28, 3)
    source, info, cfg = open_folder(mixed, channels=1)
    images, _ = next(iter(data.train_dataset(source, info, cfg, 16, seed=0)))
    assert images.shape == (16, 28, 28, 1)


def test_unreadable_and_other_files_are_skipped_with_a_warning(
    fmnist_folder, tmp_path, capsys
):
    root = tmp_path / "damaged"
    shutil.copytree(fmnist_folder, root)
    (root / "bag" / "truncated.png").write_bytes(
        (root / "bag" / "000.png").read_bytes()[:60]
    )
    (root / "bag" / "empty.jpg").write_bytes(b"")
    (root / "sneaker" / "text.png").write_text("not an image")
    (root / "sneaker" / "notes.txt").write_text("a note")
    (root / "trouser" / "more").mkdir()
    (root / ".DS_Store").write_bytes(b"\0")  # hidden: ignored silently
    source, info, cfg = open_folder(root)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"warning: {root}: skipped 3 unreadable image files ")
    assert "(first: bag/empty.jpg: empty file)" in err[0]
    assert err[1] == (
        f"warning: {root}: ignored 2 files or folders that are not .jpg/.jpeg/.png "
        "images in a class folder (first: sneaker/notes.txt)"
    )
    assert info.train_examples + info.validation_examples + info.test_examples == 120
    # A whole pass of the training stream decodes without an error.
    stream = data.train_dataset(source, info, cfg, 8, seed=0)
    steps = info.train_examples // 8 + 1
    assert sum(int(y.shape[0]) for _, y in stream.take(steps)) == steps * 8


def test_the_most_common_size_is_the_model_size(fmnist_folder, tmp_path):
    root = tmp_path / "large"
    for cls in CLASSES.values():
        (root / cls).mkdir(parents=True)
        for i, f in enumerate(sorted((fmnist_folder / cls).glob("*.png"))):
            size = (40, 32) if i % 3 else (28, 28)  # width x height
            Image.open(f).resize(size).save(root / cls / f.name)
    source, info, cfg = open_folder(root)
    assert info.image_shape == (32, 40, 1)
    images, _ = next(iter(data.train_dataset(source, info, cfg, 4, seed=0)))
    assert images.shape == (4, 32, 40, 1)
    _, info, cfg = open_folder(root, image_size=24)
    assert data.model_input_shape(info, cfg) == (24, 24, 1)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"test_fraction": 0.0, "validation_fraction": 0.0},
         "has nothing to test on (no test/ folder and config.dataset.test_fraction=0)"),
        ({"test_fraction": 1.5}, "config.dataset.test_fraction must be in [0, 1)"),
        ({"test_fraction": 0.5, "validation_fraction": 0.5},
         "leave no training images; their sum must be below 1"),
        ({"test_fraction": 1e-9}, "fell into the test split (120 images"),
        ({"train_split": "train[:50%]"},
         "config.dataset.train_split='train[:50%]': the folder"),
        ({"channels": 2}, "config.dataset.channels must be 0 (the images' own)"),
    ],
)  # fmt: skip
def test_settings_a_folder_cannot_take(fmnist_folder, changes, message):
    with pytest.raises(data.DatasetError) as error:
        open_folder(fmnist_folder, **changes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_names_that_are_folders():
    assert data.is_folder_name("./photos") and data.is_folder_name("/data/x")
    assert data.is_folder_name("~/photos") and data.is_folder_name("photos/")
    assert data.is_folder_name("..") and data.is_folder_name("../photos")
    assert not data.is_folder_name("fashion_mnist")
    assert not data.is_folder_name("cifar10:3.0.2")
    assert not data.is_folder_name("imagenet2012_subset/1pct")  # no such folder
    assert not data.is_folder_name("bad\0name/x")
    assert data.canonical_name("fashion_mnist") == "fashion_mnist"
    assert data.canonical_name("./a/b/") == os.path.join(os.getcwd(), "a", "b")


def test_every_run_keeps_its_class_names(tmp_path):
    """labels.txt for a TFDS dataset too (mock Fashion-MNIST keeps TFDS's names)."""
    with tfds.testing.mock_data(
        num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        experiment.setup(tiny_config(), tmp_path)
    names = data.read_labels(tmp_path)
    assert names[0] == "T-shirt/top" and len(names) == 10
    assert data.LABELS_FILE in wd.ARTIFACTS  # --restart removes it


def test_ablate_py_trains_a_study_on_a_folder_by_its_absolute_path(
    fmnist_folder, monkeypatch
):
    """ablate.py --dataset: every run gets the folder's absolute path (runs start
    in the repository), and the study's default work dir is named after it."""
    monkeypatch.chdir(fmnist_folder.parent)
    study_file = REPO / "configs/studies/resnet_e18_scaling.py"
    result = run_in_process(
        "ablate.py", "--study", study_file, "--dataset", "./fashion", "--dry_run",
        "--check_models=false", mock=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [shlex.split(line) for line in result.stdout.splitlines()]
    commands = [argv for argv in commands if argv and argv[0] != "#"]
    assert len(commands) == 16  # 8 cells x 2 seeds
    for argv in commands:
        assert argv[argv.index("--dataset") + 1] == str(fmnist_folder)
        workdir = Path(argv[argv.index("--workdir") + 1])
        assert "fashion_mnist-fashion" in workdir.parts


def test_old_configs_get_the_new_dataset_keys():
    old = {"deterministic": True, "dataset": {"name": "fashion_mnist"}}
    new = wd.with_added_keys(old)
    assert new["dataset"]["channels"] == 0 and new["dataset"]["test_fraction"] == 0.1
    assert new["deterministic"] is True and "channels" not in old["dataset"]
