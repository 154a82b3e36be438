"""Image folders as datasets: ``--dataset=PATH``, one folder of images per class.

Two layouts::

    PATH/<class>/<image>          everything is training data; the validation and
                                  test images are carved out of it (below)
    PATH/train/<class>/<image>    with an optional PATH/test/<class>/... and an
                                  optional PATH/validation/<class>/...

An image is a ``.jpg``, ``.jpeg`` or ``.png`` file (the suffixes TFDS's
ImageFolder reads) directly inside a class folder, of any size, grey, RGB or
RGBA. The classes are the class folders' names, sorted: label ``i`` is the
``i``-th name, and train.py writes them in that order to the work directory's
``labels.txt`` (:mod:`bidense.data.labels`).

**Loader: TFDS's ImageFolder** (``tfds.folder_dataset.ImageFolder``). It is a
TFDS builder (named splits of known size, ``ClassLabel`` names, images decoded
by TFDS's ``Image`` feature), so a folder runs through the code of every TFDS
dataset: ``sources.read``, the splits module's rules, the cached, resumable
training stream and the evaluation streams. Keras's
``image_dataset_from_directory`` was the alternative; it returns a plain
``tf.data.Dataset``, resizes every image to one size as it decodes it (no
ImageNet-style crop of the whole image) and splits in two, not three.
ImageFolder wants ``ROOT/<split>/<class>/`` and reads whole splits only, so
bidense lays the splits it has chosen out as symbolic links in a temporary
directory (``<split>/<class>/<file name>`` -> the user's file, removed at exit)
and hands that to ImageFolder. The user's folder is only ever read.

**Splits.** A ``test/`` or ``validation/`` folder is used as it is. Without
one, that split is carved from the training images by a hash of each image's
path relative to its split folder (``cats/001.jpg``): the first 8 bytes of its
SHA-256, read as a fraction ``u`` in [0, 1), put the image in the test split if
``u < dataset.test_fraction``, else in the validation split if ``u`` is below
``test_fraction + dataset.validation_fraction`` (0.1 each by default), else in
training. The carve depends on nothing but the file's name: it is the same in
every run, resume and seed, on every machine, and adding or removing images
never moves another image to another split. The splits module's rules then
apply unchanged (model selection on ``validation``, the result on ``test``);
``dataset.validation_examples`` does not apply to a folder, whose size the
recipe does not know, and ``dataset.validation_split=''`` carves no validation
images. Splits are whole: a slice such as ``train[:50%]`` is refused.

**Checked before anything trains**, each a one-line :class:`DatasetError`: a
path that is no folder; a folder without class folders, with one class only,
or with a class folder that holds no images; split folders mixed with other
folders; a ``test/`` or ``validation/`` folder whose classes differ from
``train/``'s; a split the fractions leave empty.

**Unreadable images are skipped, with a warning.** Every image is decoded once,
by TensorFlow's decoder (the one training uses), when the folder is opened: a
file that does not decode (truncated, empty, not an image despite its suffix) is
left out, and one line on stderr gives their number and the first one with the
reason, so a few broken files in a large scraped folder do not cost a run,
and none is dropped silently. A class whose images are all unreadable is an
error. Files with other suffixes (``notes.txt``, ``Thumbs.db``), subfolders of
class folders and files beside the class folders are ignored, with a count on
stderr; hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are
ignored silently. Decoding every image takes a few seconds per 10,000 small
images, at every start of train.py, evaluate.py or export.py.

**Size, channels, normalisation.** ``dataset.image_size`` (0 = the most common
size among the training images) and ``dataset.channels`` (0 = 1 if every image
is grey, else 3; or 1 or 3 to convert) set the model's input. Images of other
sizes are resized to it as they are read (bilinear, antialiased) and then
cached and augmented like a small TFDS dataset (pad-and-crop, flips); images
larger than 64 pixels take the ImageNet-style random-resized crop of the whole
image instead (``preprocessing.choose_preprocessing``). A folder is normalised
to [-1, 1], ``(x - 127.5) / 127.5`` per channel, with no statistics of its own:
the stem's float convolution and BatchNorm absorb any per-channel scale and
shift of the input, and a deployed model then needs nothing but that formula.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from bidense.data import splits as splits_lib
from bidense.data.sources import DatasetError, DatasetInfo

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLIT_FOLDERS = ("train", "validation", "test")
CHANNELS = (0, 1, 3)  # 0 = the images' own: 1 if all are grey, else 3
# What a folder dataset looks like, for the error messages.
LAYOUT = "one folder of .jpg/.png images per class: PATH/<class>/*.png"
# Names that mean a path whatever is on disk (TFDS names never start so).
_PATH_PREFIXES = ("/", "./", "../", "~")


def is_folder_name(name: str) -> bool:
    """Whether ``--dataset NAME`` names an image folder rather than a TFDS dataset.

    A path (absolute, or starting with ``./``, ``../`` or ``~``, or ending in
    ``/``) always does, whether it exists or not; a name with a slash inside does
    when it is an existing directory (TFDS names use a slash for configs, as in
    ``imagenet2012_subset/1pct``); a plain word never does (write ``./photos``).
    """
    if name in (".", "..") or name.startswith(_PATH_PREFIXES) or name.endswith("/"):
        return True
    if "/" in name or os.sep in name:
        try:
            return os.path.isdir(name)
        except (ValueError, OSError):  # e.g. an embedded NUL byte
            return False
    return False


def canonical_name(name: str) -> str:
    """A folder's absolute path (what config.json records), else ``name`` itself.

    Absolute, so that evaluate.py and a resumed run find the folder from any
    directory, and ablate.py's runs (started in the repository) find it too.
    """
    if not is_folder_name(name):
        return name
    return os.path.abspath(os.path.expanduser(name))


@dataclasses.dataclass(frozen=True)
class _Image:
    path: Path
    key: str  # "<class>/<file name>": what the carve hashes
    shape: tuple[int, int, int]  # as decoded: height, width, channels


class FolderSource:
    """A checked image folder; a TFDS ImageFolder builder once configured.

    :func:`bidense.data.prepare` returns one for a folder name and
    :func:`bidense.data.dataset_info` configures it with a config's ``dataset``
    group (channels, split fractions); from then on it reads like the TFDS
    builder of any other dataset (``as_dataset``, ``info``).
    """

    def __init__(self, root: Path, images: dict, class_names: list[str]):
        self.name = str(root)
        self.root = root
        self._images = images  # split folder -> class -> [_Image]
        self.class_names = class_names
        self._builder = None
        self._view = None

    @property
    def split_folders(self) -> tuple[str, ...]:
        """The split folders the folder has (``("train",)`` without any)."""
        return tuple(self._images)

    @property
    def info(self):
        return self._configured().info

    def download_and_prepare(self, **kwargs) -> None:
        """Nothing to prepare: the images are read where they are."""

    def as_dataset(self, split, **kwargs) -> tf.data.Dataset:
        # ImageFolder shuffles files with an unseeded shuffle (it ignores the
        # read config's seed): a file order that a resumed process would not
        # repeat. Its order is already a fixed permutation of each split, and
        # the training stream shuffles examples with its own seeds.
        kwargs["shuffle_files"] = False
        return self._configured().as_dataset(split=split, **kwargs)

    def _configured(self):
        if self._builder is None:
            raise RuntimeError("configure the folder with dataset_info() first")
        return self._builder

    def assign(self, validation_fraction: float, test_fraction: float) -> dict:
        """split -> class -> [image]: the folder's split folders plus the carve."""
        carve = [
            (split, fraction)
            for split, fraction in (
                ("test", test_fraction),
                ("validation", validation_fraction),
            )
            if split not in self._images and fraction > 0
        ]
        result = {s: {c: [] for c in self.class_names} for s in SPLIT_FOLDERS}
        for split, by_class in self._images.items():
            for cls, images in by_class.items():
                for image in images:
                    target = split
                    if split == "train":
                        target = _carved_split(image.key, carve)
                    result[target][cls].append(image)
        return result

    def dataset_info(self, cfg_dataset) -> DatasetInfo:
        """Chooses the splits, size and channels from ``cfg_dataset``; lays the
        splits out for ImageFolder."""
        channels = cfg_dataset.get("channels", 0)
        validation_fraction = cfg_dataset.get("validation_fraction", 0.1)
        test_fraction = cfg_dataset.get("test_fraction", 0.1)
        _check_fractions(validation_fraction, test_fraction)
        if cfg_dataset.validation_split == "":  # no model selection: no carve
            validation_fraction = 0.0
        assigned = self.assign(validation_fraction, test_fraction)
        counts = {
            split: sum(map(len, by_class.values()))
            for split, by_class in assigned.items()
        }
        for split, fraction in (
            ("test", test_fraction),
            ("validation", validation_fraction),
            ("train", 1.0),
        ):
            if split not in self._images and fraction > 0 and not counts[split]:
                raise DatasetError(self._empty_split_message(split, fraction))
        available = {split: n for split, n in counts.items() if n}
        if "test" not in available and "validation" not in available:
            raise DatasetError(
                f"{self.name} has nothing to test on (no test/ folder and "
                "config.dataset.test_fraction=0); give a test/ folder or set "
                "config.dataset.test_fraction, e.g. 0.1"
            )
        chosen = splits_lib.resolve(
            available,
            train=cfg_dataset.train_split,
            validation=cfg_dataset.validation_split,
            test=cfg_dataset.test_split,
            validation_examples=0,  # a folder carves by fraction (above)
        )
        for key, split in (
            ("train_split", chosen.train),
            ("validation_split", chosen.validation),
            ("test_split", chosen.test),
        ):
            if split is not None and split not in available:
                raise DatasetError(
                    f"config.dataset.{key}={split!r}: the folder {self.name} has "
                    f"the splits {', '.join(sorted(available))} (whole splits only, "
                    "no slices)"
                )
        train_images = [i for images in assigned["train"].values() for i in images]
        if channels == 0:
            channels = 1 if all(i.shape[2] in (1, 2) for i in train_images) else 3
        self._view = _lay_out(assigned, self.class_names)
        self._builder = tfds.folder_dataset.ImageFolder(
            str(self._view), shape=(None, None, channels)
        )
        height, width = _most_common_size(train_images)
        return DatasetInfo(
            name=self.name,
            image_shape=(height, width, channels),
            num_classes=len(self.class_names),
            splits=chosen,
            train_examples=available[chosen.train],
            validation_examples=chosen.validation and available[chosen.validation],
            test_examples=available[chosen.test],
            class_names=tuple(self.class_names),
        )

    def _empty_split_message(self, split: str, fraction: float) -> str:
        if split == "train":
            return (
                f"config.dataset.test_fraction and validation_fraction leave no "
                f"training images in {self.name}; lower them"
            )
        total = sum(len(i) for by in self._images.values() for i in by.values())
        hint = " (0 for none)" if split == "validation" else ""
        return (
            f"no image of {self.name} fell into the {split} split ({total} images, "
            f"config.dataset.{split}_fraction={fraction}); add images, raise "
            f"config.dataset.{split}_fraction{hint}, or give a {split}/ folder"
        )


def open_folder(name: str) -> FolderSource:
    """Scans and checks the folder ``name``; decodes every image once.

    Raises DatasetError (one line) for a folder that cannot be a classification
    dataset; prints one warning line each for skipped and ignored files.
    """
    root = Path(canonical_name(name))
    try:
        if not root.exists():
            raise DatasetError(
                f"dataset folder {root} does not exist; give a folder with {LAYOUT}"
            )
        if not root.is_dir():
            raise DatasetError(f"dataset {root} is a file, not a folder of {LAYOUT}")
        found, ignored = _scan(root)
    except (OSError, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        reason = getattr(error, "strerror", None) or str(error)
        raise DatasetError(f"cannot read dataset folder {root} ({reason})") from None
    images = _decode_all(root, found)
    if ignored:
        _warn(
            f"{root}: ignored {len(ignored)} files or folders that are not "
            f".jpg/.jpeg/.png images in a class folder (first: {ignored[0]})"
        )
    return FolderSource(root, images, sorted(found["train"]))


def _scan(root: Path) -> tuple[dict, list[str]]:
    """split folder -> class -> [image path], and the entries ignored."""
    dirs, files = _entries(root)
    ignored = [_relative(f, root) for f in files]
    if not dirs:
        if any(_is_image(f) for f in files):
            raise DatasetError(
                f"{root} holds images but no class folders; move each class's "
                f"images into a folder named after the class ({root}/<class>/)"
            )
        what = f" ({len(files)} files, no images)" if files else ""
        raise DatasetError(f"dataset folder {root} is empty{what}; give it {LAYOUT}")
    split_dirs = [d for d in dirs if d.name in SPLIT_FOLDERS]
    if split_dirs:
        others = [d.name for d in dirs if d.name not in SPLIT_FOLDERS]
        names = [d.name for d in split_dirs]
        if others:
            raise DatasetError(
                f"{root} mixes split folders ({', '.join(names)}) with other "
                f"folders ({', '.join(others[:3])}); put the class folders either "
                "all directly in it or all inside train/ (and test/, validation/)"
            )
        if "train" not in names:
            raise DatasetError(
                f"{root} has {'/, '.join(names)}/ but no train/ folder; put the "
                f"training images in {root}/train/<class>/"
            )
        found = {d.name: _classes(d, root, ignored) for d in split_dirs}
    else:
        found = {"train": _classes(root, root, ignored, dirs=dirs)}
    # train first: its classes are the labels, the others are checked against it
    found = {s: found[s] for s in SPLIT_FOLDERS if s in found}
    train = found["train"]
    where = _split_folder(root, "train")
    if len(train) < 2:
        names = f" ({next(iter(train))})" if train else ""
        raise DatasetError(
            f"{where} has {len(train)} class folder{'' if train else 's'}{names}; a "
            "classifier needs two classes or more: add one folder of images per class"
        )
    for split, by_class in found.items():
        empty = [c for c, paths in by_class.items() if not paths]
        if empty:
            folder = _split_folder(root, split) / empty[0]
            more = (
                f" (and {len(empty) - 1} more class folders)" if len(empty) > 1 else ""
            )
            raise DatasetError(
                f"{folder} holds no .jpg, .jpeg or .png images{more}; put the "
                "class's images in it, or remove the folder"
            )
        if set(by_class) != set(train):
            only = sorted(set(by_class) - set(train))
            missing = sorted(set(train) - set(by_class))
            raise DatasetError(
                f"{root}/{split}/ and {root}/train/ hold different classes (only in "
                f"{split}/: {', '.join(only) or 'none'}; only in train/: "
                f"{', '.join(missing) or 'none'}); give both the same class folders"
            )
    return found, ignored


def _classes(folder: Path, root: Path, ignored: list, dirs=None) -> dict:
    """class name -> sorted image paths, for the class folders in ``folder``."""
    if dirs is None:
        dirs, files = _entries(folder)
        ignored.extend(_relative(f, root) for f in files)
    found = {}
    for class_dir in dirs:
        subdirs, files = _entries(class_dir)
        ignored.extend(_relative(p, root) for p in subdirs)
        ignored.extend(_relative(f, root) for f in files if not _is_image(f))
        found[class_dir.name] = [f for f in files if _is_image(f)]
    return found


def _split_folder(root: Path, split: str) -> Path:
    """Where a split's class folders are: ROOT/<split>, or ROOT itself without."""
    return root / split if (root / split).is_dir() else root


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """Sorted subfolders and files of ``folder``, hidden ones left out."""
    dirs, files = [], []
    with os.scandir(folder) as scan:
        for entry in scan:
            if entry.name.startswith("."):
                continue
            (dirs if entry.is_dir() else files).append(Path(entry.path))
    return sorted(dirs), sorted(files)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _decode_all(root: Path, found: dict) -> dict:
    """Decodes every image; returns split -> class -> [_Image] of readable ones."""
    listed = [
        (split, cls, path)
        for split, by_class in found.items()
        for cls, paths in by_class.items()
        for path in paths
    ]
    shapes = _decoded_shapes([str(path) for _, _, path in listed])
    images = {split: {cls: [] for cls in by_class} for split, by_class in found.items()}
    unreadable = []
    for (split, cls, path), shape in zip(listed, shapes, strict=True):
        if shape is None:
            unreadable.append(path)
        else:
            key = f"{cls}/{path.name}"
            images[split][cls].append(_Image(path, key, shape))
    if unreadable:
        first = unreadable[0]
        _warn(
            f"{root}: skipped {len(unreadable)} unreadable image files (first: "
            f"{_relative(first, root)}: {_decode_error(first)}); fix or delete them "
            "to use them"
        )
    for split, by_class in images.items():
        for cls, readable in by_class.items():
            if not readable:
                first = found[split][cls][0]
                raise DatasetError(
                    f"none of the {len(found[split][cls])} images in "
                    f"{_split_folder(root, split) / cls} can be read (first: "
                    f"{first.name}: {_decode_error(first)}); replace them"
                )
    return images


def _decoded_shapes(paths: list[str]) -> list[tuple[int, int, int] | None]:
    """The decoded (height, width, channels) of each file, None if it fails."""
    if not paths:
        return []

    def shape(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return index, tf.shape(image)

    indices = tf.range(len(paths), dtype=tf.int64)
    ds = tf.data.Dataset.from_tensor_slices((indices, paths))
    # ignore_errors drops the files the decoder refuses; the indices that come
    # through tell which ones they were.
    ds = ds.map(shape, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors().batch(4096)
    shapes = [None] * len(paths)
    for index, shape_batch in ds.as_numpy_iterator():
        for i, (height, width, channels) in zip(index, shape_batch, strict=True):
            shapes[i] = (int(height), int(width), int(channels))
    return shapes


def _decode_error(path: Path) -> str:
    """Why TensorFlow's decoder refuses ``path``, in a few words."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
    except tf.errors.OpError as error:
        text = re.sub(r"\{\{.*?\}\}\s*", "", error.message)
        return re.sub(r"\s*\[Op:.*$", "", text).strip().splitlines()[0]
    except OSError as error:
        return error.strerror or type(error).__name__
    return "not readable"


def _carved_split(key: str, carve: list[tuple[str, float]]) -> str:
    """Where the training image ``key`` goes: a split of ``carve`` or train."""
    if not carve:
        return "train"
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    u /= 2.0**64
    low = 0.0
    for split, fraction in carve:
        if low <= u < low + fraction:
            return split
        low += fraction
    return "train"


def _check_fractions(validation_fraction, test_fraction) -> None:
    for key, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 <= value < 1.0:
            raise DatasetError(f"config.dataset.{key} must be in [0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"config.dataset.validation_fraction ({validation_fraction}) and "
            f"test_fraction ({test_fraction}) leave no training images; their sum "
            "must be below 1"
        )


def _most_common_size(images: list[_Image]) -> tuple[int, int]:
    """The most common (height, width); ties go to the larger image."""
    counts = collections.Counter(i.shape[:2] for i in images)
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw))


def _lay_out(assigned: dict, class_names: list[str]) -> Path:
    """A temporary ``<split>/<class>/<file>`` tree of links to the chosen images."""
    view = Path(tempfile.mkdtemp(prefix="bidense_folder_"))
    atexit.register(shutil.rmtree, view, ignore_errors=True)
    for split, by_class in assigned.items():
        if not any(by_class.values()):
            continue
        for cls in class_names:  # every class in every split: ImageFolder's labels
            folder = view / split / cls
            folder.mkdir(parents=True)
            for image in by_class[cls]:
                (folder / image.path.name).symlink_to(image.path)
    return view


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
