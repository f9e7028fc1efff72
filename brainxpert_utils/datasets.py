"""The dataset registry: what each dataset is, where it lives, how to fetch it and check it.

- ``REGISTRY`` / ``get_dataset``: name, licence, citation, classes, label mappings, download.
- ``locate_data_dir`` / ``dataset_dir``: explicit path > ``$BRAINXPERT_DATA_DIR`` > ``<repo>/data/datasets``
  (outside a repository checkout, e.g. a pip-installed package on Colab: ``~/.brainxpert/datasets``).
- ``load_manifest`` / ``verify_dataset``: per-file sha256 from the shipped ``MANIFEST-<folder>.sha256``.
- ``fetch_dataset``: download, extract to a temporary folder, verify every file, rename into place.

No TensorFlow here (the CLI imports this module). Nothing here ever writes into a dataset folder.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from brainxpert_utils import config, download
from brainxpert_utils.download import VerifyReport, compare_to_manifest, hash_folder
from brainxpert_utils.errors import DataError, DownloadError

ENV_VAR = "BRAINXPERT_DATA_DIR"
DOWNLOADS = ".downloads"  # inside the data folder, beside (never inside) the dataset folders
SARTAJ_COMMIT = "3ea9f4eae54c67e5bddbf6f7a73582967a5f5f79"
NAVONEEL_COMMIT = "6abb14ff639215a164c8815268b7703c29ea4a0b"
SARTAJ_TOP = f"Brain-Tumor-Classification-DataSet-{SARTAJ_COMMIT}/"
NAVONEEL_TOP = f"Brain-Tumor-Detection-{NAVONEEL_COMMIT}/"
SARTAJ_CLASSES = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")
TASK_LABELS = {"binary": ["no tumour", "tumour"],
               "multiclass": ["glioma", "meningioma", "no tumour", "pituitary"]}


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the course knows about one dataset.

    ``archive_members`` pairs an archive prefix with the prefix it gets inside the dataset folder;
    only entries under these prefixes are extracted. ``manifest`` is a file name in
    ``data/manifests`` (or an absolute path); None for generated data.
    """

    name: str
    folder: str
    title: str
    description: str
    licence: str
    citation: str
    url: str | None
    archive_sha256: str | None
    archive_members: tuple[tuple[str, str], ...]
    class_names: tuple[str, ...]
    binary_positive: frozenset[str]
    multiclass: bool
    manifest: str | None
    default_download: bool


REGISTRY: dict[str, DatasetInfo] = {
    "sartaj": DatasetInfo(
        name="sartaj",
        folder="sartaj_brain_tumor_classification_mri",
        title="Brain Tumor Classification (MRI)",
        description=("3,264 brain MRI slices (JPEG, 89 MiB) in 4 classes with the authors' own "
                     "Training/Testing split; layout <Training|Testing>/<class>/<file>. Has exact and "
                     "near duplicates across Training and Testing: use the course's grouped split."),
        licence="MIT (declared by the first author on his Hugging Face dataset card)",
        citation=("Sartaj Bhuvaji, Ankita Kadam, Prajakta Bhumkar, Sameer Dedge, Swati Kanchan (2020). "
                  "Brain Tumor Classification (MRI). Kaggle. doi:10.34740/KAGGLE/DSV/1183165"),
        url=("https://github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet/archive/"
             f"{SARTAJ_COMMIT}.zip"),
        archive_sha256=None,  # GitHub builds archives on the fly: every extracted file is checked instead
        archive_members=((SARTAJ_TOP + "Training/", "Training/"), (SARTAJ_TOP + "Testing/", "Testing/")),
        class_names=SARTAJ_CLASSES,
        binary_positive=frozenset({"glioma_tumor", "meningioma_tumor", "pituitary_tumor"}),
        multiclass=True,
        manifest="MANIFEST-sartaj_brain_tumor_classification_mri.sha256",
        default_download=True,
    ),
    "navoneel": DatasetInfo(
        name="navoneel",
        folder="navoneel_brain_mri_images",
        title="Brain MRI Images for Brain Tumor Detection",
        description=("253 brain MRI images (8 MiB), binary yes (tumour) / no, heterogeneous formats and "
                     "colour modes; layout brain_tumor_dataset/<yes|no>/<file>; no official split. "
                     "For external checks only."),
        licence="UNVERIFIED (no licence in the GitHub mirrors; check the Kaggle page before publishing)",
        citation=("Navoneel Chakrabarty (2019). Brain MRI Images for Brain Tumor Detection. Kaggle: "
                  "navoneel/brain-mri-images-for-brain-tumor-detection"),
        url=f"https://github.com/MohamedAliHabib/Brain-Tumor-Detection/archive/{NAVONEEL_COMMIT}.zip",
        archive_sha256=None,
        archive_members=((NAVONEEL_TOP + "yes/", "brain_tumor_dataset/yes/"),
                         (NAVONEEL_TOP + "no/", "brain_tumor_dataset/no/")),
        class_names=("no", "yes"),
        binary_positive=frozenset({"yes"}),
        multiclass=False,
        manifest="MANIFEST-navoneel_brain_mri_images.sha256",
        default_download=False,
    ),
    "synthetic": DatasetInfo(
        name="synthetic",
        folder="synthetic_phantoms",
        title="SYNTHETIC PHANTOMS - not MRI",
        description=("Generated MRI-like drawings with lesion masks (brainxpert_utils.synthetic), same "
                     "class folders as sartaj; layout <class>/phantom_XXXX.png. Offline stand-in only."),
        licence="MIT (generated by this course)",
        citation="Generated by brainxpert_utils.synthetic.write_synthetic_dataset",
        url=None,
        archive_sha256=None,
        archive_members=(),
        class_names=SARTAJ_CLASSES,
        binary_positive=frozenset({"glioma_tumor", "meningioma_tumor", "pituitary_tumor"}),
        multiclass=True,
        manifest=None,
        default_download=False,
    ),
}


def get_dataset(name: str | DatasetInfo) -> DatasetInfo:
    """The registry entry for ``name`` (a DatasetInfo passes through unchanged)."""
    if isinstance(name, DatasetInfo):
        return name
    if name not in REGISTRY:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


# ----------------------------------------------------------------------------- labels
def class_of(name: str | DatasetInfo, relative_path: str) -> str:
    """Class folder name of a file given by its relative POSIX path (the nearest class folder)."""
    info = get_dataset(name)
    for part in reversed(PurePosixPath(relative_path).parts[:-1]):
        if part in info.class_names:
            return part
    raise DataError(f"{relative_path!r} is not inside a class folder of {info.name} "
                    f"({', '.join(info.class_names)})")


def _check_class(info: DatasetInfo, class_name: str) -> None:
    if class_name not in info.class_names:
        raise DataError(f"{class_name!r} is not a class of {info.name}: use one of {', '.join(info.class_names)}")


def binary_label(name: str | DatasetInfo, class_name: str) -> int:
    """1 for a tumour class, 0 for no tumour."""
    info = get_dataset(name)
    _check_class(info, class_name)
    return int(class_name in info.binary_positive)


def multiclass_label(name: str | DatasetInfo, class_name: str) -> int:
    """4-class label 0..3 in the order of ``class_names``; DataError for a binary-only dataset."""
    info = get_dataset(name)
    if not info.multiclass:
        raise DataError(f"{info.name} is binary only (yes/no): use task='binary' or dataset='sartaj'")
    _check_class(info, class_name)
    return info.class_names.index(class_name)


def task_labels(task: str) -> list[str]:
    """Display names of the labels: binary -> no tumour, tumour; multiclass -> the 4 classes."""
    if task not in TASK_LABELS:
        raise DataError(f"unknown task {task!r}: use 'binary' or 'multiclass'")
    return list(TASK_LABELS[task])


# ----------------------------------------------------------------------------- locating
def _where(path: str | os.PathLike | None, info: DatasetInfo | None = None) -> tuple[Path, str]:
    """The data folder and which rule chose it (for messages).

    A path naming ``info``'s dataset folder itself is taken as pointing at its parent.
    """
    root, rule = _choose(path)
    return (root.parent, rule) if info is not None and root.name == info.folder else (root, rule)


def _choose(path: str | os.PathLike | None) -> tuple[Path, str]:
    """explicit > $BRAINXPERT_DATA_DIR > default, and which rule chose the folder."""
    if path is not None:
        return Path(path).expanduser(), "the path you passed"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    root = config.repo_root()
    if root is not None:
        return root / "data" / "datasets", "the default <repo>/data/datasets"
    return Path.home() / ".brainxpert" / "datasets", "the default ~/.brainxpert/datasets"


def locate_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder that holds the dataset folders: explicit > $BRAINXPERT_DATA_DIR > <repo>/data/datasets.

    Outside a repository checkout (pip-installed package) the default is ~/.brainxpert/datasets.
    The folder need not exist yet.
    """
    return _choose(path)[0]


def fetch_command(info: DatasetInfo) -> str:
    """The shell command that downloads a dataset."""
    return "brainxpert fetch-data" + ("" if info.default_download else f" --dataset {info.name}")


def dataset_dir(name: str | DatasetInfo, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/<folder>`` of a dataset (``data_dir`` may also be the dataset folder itself).

    DataError when it is missing, saying how to fetch it or point the course at a copy.
    """
    info = get_dataset(name)
    root, rule = _where(data_dir, info)
    if (root / info.folder).is_dir():
        return root / info.folder
    if info.url is None:
        how = (f"- Generate it: brainxpert_utils.synthetic.write_synthetic_dataset({str(root)!r}) "
               "(SYNTHETIC images, not MRI).")
    else:
        how = (f"- Download it (verified file by file): run `{fetch_command(info)}` in a terminal, or "
               f"`datasets.fetch_dataset({info.name!r})` in Python.")
    raise DataError(
        f"dataset {info.name!r} ({info.title}) not found: there is no folder {root / info.folder} "
        f"(data folder from {rule}).\n{how}\n"
        f"- Already have a copy? Point the course at the folder that CONTAINS '{info.folder}/': "
        f"set {ENV_VAR}=/path/to/that/folder, or pass data_dir=... (CLI: --data-dir ...)."
    )


# ----------------------------------------------------------------------------- manifests
def _manifest_file(file_name: str) -> Path:
    """Find a manifest: absolute path, else <repo>/data/manifests, else the installed package copy."""
    if Path(file_name).is_absolute():
        return Path(file_name)
    candidates = [Path(__file__).resolve().parent / "resources" / "manifests" / file_name]
    if config.repo_root() is not None:
        candidates.insert(0, config.repo_root() / "data" / "manifests" / file_name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"manifest {file_name} not found in {', '.join(map(str, candidates))}: reinstall the package")


def read_manifest(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum``-format file into ``{relative path: sha256}``."""
    entries: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if match is None:
            if line.strip():
                raise DataError(f"{path}, line {number}: not '<sha256>  <path>' (sha256sum format)")
            continue
        entries[match.group(2)] = match.group(1)
    return entries


def load_manifest(name: str | DatasetInfo, manifest: Mapping[str, str] | str | os.PathLike | None = None
                  ) -> dict[str, str]:
    """``{relative path: sha256}`` of a dataset from its shipped manifest (or an explicit override)."""
    if isinstance(manifest, Mapping):
        return dict(manifest)
    if manifest is not None:
        return read_manifest(manifest)
    info = get_dataset(name)
    if info.manifest is None:
        raise DataError(f"{info.name} has no manifest: it is generated, not downloaded")
    return read_manifest(_manifest_file(info.manifest))


def verify_dataset(name: str | DatasetInfo, data_dir: str | os.PathLike | None = None, *,
                   manifest: Mapping[str, str] | str | os.PathLike | None = None,
                   progress: bool = False) -> VerifyReport:
    """Compare every file of a dataset folder with its manifest: missing, changed sha256, extra."""
    info = get_dataset(name)
    expected = load_manifest(info, manifest)
    folder = dataset_dir(info, data_dir)
    return compare_to_manifest(info.name, folder, hash_folder(folder, progress), expected)


# ----------------------------------------------------------------------------- fetching
def manual_instructions(info: DatasetInfo, root: Path) -> str:
    """How to get a dataset by hand, and how to point the course at an existing copy."""
    moves = "\n".join(f"       {src}  ->  {root / info.folder / dst}" for src, dst in info.archive_members)
    return (
        f"To get '{info.name}' by hand:\n"
        f"  1. Download {info.url} (a browser works).\n"
        f"  2. Either let the course check and unpack it: {fetch_command(info)} --url /path/to/the.zip"
        f"{'' if root == locate_data_dir() else f' --data-dir {root}'}\n"
        f"     or unzip it yourself and move these folders:\n{moves}\n"
        f"Already have a copy elsewhere? Set {ENV_VAR} to the folder that CONTAINS '{info.folder}/' "
        f"or pass data_dir=... (CLI: --data-dir ...)."
    )


def fetch_dataset(name: str | DatasetInfo = "sartaj", data_dir: str | os.PathLike | None = None,
                  url: str | None = None, timeout: float = 30, progress: bool = True, *,
                  manifest: Mapping[str, str] | str | os.PathLike | None = None) -> Path:
    """Download a dataset, verify every file against its manifest and install it; return its folder.

    ``url`` may be http(s), ``file://`` or a local zip path (default: the registry's URL). A copy
    already present and verified is not downloaded again. On failure nothing is left in the data
    folder except a resumable ``.downloads/*.part`` file after an interrupted transfer.
    """
    info = get_dataset(name)
    source = url or info.url
    if source is None:
        raise DataError(f"{info.name} is generated, not downloaded: "
                        "use brainxpert_utils.synthetic.write_synthetic_dataset")
    if not info.default_download:
        print(f"WARNING: {info.name} licence: {info.licence}. Use it for checks only; do not redistribute.",
              file=sys.stderr)
    expected = load_manifest(info, manifest)
    root = _where(data_dir, info)[0]
    dest = root / info.folder
    if dest.exists():
        report = verify_dataset(info, root, manifest=expected, progress=progress)
        if report.ok:
            return dest
        raise DataError(f"{dest} already exists but does not match the manifest:\n{report}\n"
                        "The course never overwrites it: move or delete it, then fetch again.")
    try:
        return download.install_archive(source, info.archive_members, expected, dest, root / DOWNLOADS,
                                        timeout, progress, name=info.name)
    except PermissionError as exc:
        raise DataError(f"cannot write in {root} ({exc}): pass a writable data_dir (CLI: --data-dir)") from exc
    except DownloadError as exc:
        raise type(exc)(f"{exc}\n\n{manual_instructions(info, root)}") from exc


def _cli_fetch(args: argparse.Namespace) -> int:
    folder = fetch_dataset(args.dataset, args.data_dir, args.url, args.timeout, progress=not args.quiet)
    print(f"{args.dataset}: ready in {folder} (every file verified against its manifest)")
    return 0


def register_cli(subparsers) -> None:
    """Add ``brainxpert fetch-data``."""
    parser = subparsers.add_parser(
        "fetch-data", help="download and verify a dataset (default: sartaj)",
        description="Download a dataset, verify every file (sha256) and install it in the data folder.")
    parser.add_argument("--dataset", default="sartaj",
                        choices=[n for n, info in REGISTRY.items() if info.url], help="default: sartaj")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder to hold the dataset folder (default: ${ENV_VAR}, else data/datasets)")
    parser.add_argument("--url", default=None, help="http(s) or file:// URL, or a local .zip (default: registry)")
    parser.add_argument("--timeout", type=float, default=30, help="network timeout in seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cli_fetch)
