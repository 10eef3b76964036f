"""The ``brgen`` format: BR-Gen (Cai et al., "Zooming In on Fakes", 2025), the localized
inpainting corpus the SIGMA paper trains Stage I on, with the originals taken from the
user's own COCO, ImageNet and Places copies (``docs/corpora.md`` says what is published
and what this reader infers about the layout)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import ConfigError
from ..pair import PairRef
from .base import UniqueIds, register_format
from .folder import IMAGE_EXTENSIONS

#: The published inpainting methods (folder names compared case-insensitively, ``-``,
#: ``_`` and spaces ignored): two traditional and three text-guided.
BRGEN_METHODS: tuple[str, ...] = ("lama", "mat", "sdxl", "brushnet", "powerpaint")
#: The published mask types: COCO-Stuff "stuff" regions and background regions.
BRGEN_MASK_TYPES: tuple[str, ...] = ("stuff", "background")
#: The real-image sets the lists name (``RealImage/<set>/<set>_image_list.txt``).
BRGEN_SETS: tuple[str, ...] = ("coco", "imagenet", "places")
#: Split folder names, when the download keeps its splits in folders.
BRGEN_SPLITS: dict[str, str] = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}
#: Folder names that hold region masks (everything else under a method folder is a
#: forged image).
MASK_FOLDERS = frozenset({"mask", "masks", "regionmask", "regionmasks", "gt", "groundtruth"})
REAL_IMAGE_FOLDER = "RealImage"
#: Keys of a BR-Gen dataset file (a YAML ``--data`` naming the download and originals).
DATASET_FILE_KEYS = frozenset({"format", "root", "originals", "methods", "mask_types", "split"})


def _token(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name.lower())


def parse_originals(value: Mapping[str, Any] | str | None) -> dict[str, Path]:
    """``{"coco": DIR, ...}`` from a mapping or from ``coco=DIR,imagenet=DIR,places=DIR``
    (``--originals``); set names are case-insensitive."""
    if value is None:
        return {}
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, folder = part.partition("=")
            if not sep or not name.strip() or not folder.strip():
                raise ConfigError(f"--originals: expected SET=DIR, got {part.strip()!r}")
            pairs.append((name.strip(), folder.strip()))
    elif isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        raise ConfigError(f"originals: expected SET=DIR pairs, got {type(value).__name__}")
    return {_token(name): Path(folder).expanduser() for name, folder in pairs}


def _names(value: Iterable[str] | str | None, known: tuple[str, ...], what: str) -> set[str]:
    if value is None:
        return set(known)
    items = value.split(",") if isinstance(value, str) else list(value)
    chosen = {_token(str(v)) for v in items if str(v).strip()}
    unknown = sorted(chosen - set(known))
    if unknown or not chosen:
        raise ConfigError(
            f"BR-Gen {what}: unknown {unknown or 'none given'}; known: {', '.join(known)}"
        )
    return chosen


class RealImageLists:
    """The real images BR-Gen names: stem -> (set, listed entry, list file, line)."""

    def __init__(self, root: Path) -> None:
        self.by_stem: dict[str, tuple[str, str, Path, int]] = {}
        self.files: list[Path] = []
        folder = root / REAL_IMAGE_FOLDER
        for set_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
            for listing in sorted(set_folder.glob("*_image_list.txt")):
                self.files.append(listing)
                set_name = _token(set_folder.name)
                with open(listing, encoding="utf-8-sig") as handle:
                    for line_number, line in enumerate(handle, start=1):
                        entry = line.strip().replace("\\", "/")
                        if entry and not entry.startswith("#"):
                            stem = PurePosixPath(entry).stem
                            self.by_stem.setdefault(stem, (set_name, entry, listing, line_number))

    def find(self, stem: str) -> tuple[str, str, Path, int] | None:
        """The listed real image of a forged or mask stem: the stem itself, else the
        longest prefix ending before a ``_`` (``<real stem>_<suffix>`` names)."""
        if stem in self.by_stem:
            return self.by_stem[stem]
        parts = stem.split("_")
        for end in range(len(parts) - 1, 0, -1):
            found = self.by_stem.get("_".join(parts[:end]))
            if found is not None:
                return found
        return None


def resolve_original(set_folder: Path, entry: str) -> Path | None:
    """The user's copy of a listed real image: ``DIR/<entry>``, ``DIR/<file name>``, or
    for ImageNet names ``DIR/<wnid>/<file name>`` (the training set's class folders)."""
    name = PurePosixPath(entry).name
    candidates = [set_folder / entry, set_folder / name]
    wnid = re.match(r"(n\d{8})_", name)
    if wnid:
        candidates.append(set_folder / wnid.group(1) / name)
    return next((c for c in candidates if c.is_file()), None)


def _classify(relative: PurePosixPath) -> tuple[str | None, str | None, str | None, bool]:
    """``(split, mask type, method, is_mask)`` read off a file's folder names."""
    split = mask_type = method = None
    is_mask = False
    for part in relative.parts[:-1]:
        token = _token(part)
        if token in BRGEN_SPLITS:
            split = BRGEN_SPLITS[token]
        elif token in BRGEN_MASK_TYPES:
            mask_type = token
        elif token in BRGEN_METHODS:
            method = token
        elif token in MASK_FOLDERS:
            is_mask = True
    return split, mask_type, method, is_mask


def _walk_images(root: Path) -> Iterator[PurePosixPath]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and not (folder == str(root) and d == REAL_IMAGE_FOLDER)
        )
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield PurePosixPath(Path(folder, name).relative_to(root).as_posix())


def read_dataset_file(path: Path) -> dict[str, Any]:
    """The options of a BR-Gen dataset file (YAML): ``root`` and ``originals`` (folders
    relative to the file), ``methods``, ``mask_types``, ``split``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read BR-Gen dataset file {path}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != "brgen" or "root" not in data:
        raise ConfigError(f"{path}: a BR-Gen dataset file has 'format: brgen' and a 'root'")
    unknown = sorted(set(data) - DATASET_FILE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    options = {k: v for k, v in data.items() if k != "format"}
    # Relative folders in the file are relative to the file, not to the working folder.
    options["root"] = (path.parent / str(data["root"])).resolve()
    if data.get("originals") is not None:
        options["originals"] = {
            name: (path.parent / folder).resolve()
            for name, folder in parse_originals(data["originals"]).items()
        }
    return options


def iter_brgen(
    path: Path,
    *,
    originals: Mapping[str, Any] | str | None = None,
    methods: Iterable[str] | str | None = None,
    mask_types: Iterable[str] | str | None = None,
    split: str | None = None,
) -> Iterator[PairRef]:
    """BR-Gen's localized inpainting pairs, originals from the user's own copies.

    ``path`` is the BR-Gen folder (it holds ``RealImage/``) or a dataset file (YAML with
    ``format: brgen``, ``root`` and the options below). Layout as read::

        RealImage/<Set>/<Set>_image_list.txt     real images used, one per line
        [<split>/]<MaskType>/<Mask>/<stem>.png    region mask, white = regenerated
        [<split>/]<MaskType>/<Method>/<stem>.*    forged image

    Folder names are matched case-insensitively wherever they sit in a file's path:
    mask types ``stuff``/``background``, methods ``lama``, ``mat``, ``sdxl``,
    ``brushnet``, ``powerpaint``, mask folders ``mask``/``masks``/``gt``, splits
    ``train``/``test``/``val``. A forged image is paired with the mask of the same
    stem under the same split and mask type (a mask under its method folder first), and
    with the real image the lists name by that stem (or the longest ``_``-prefix of it).

    ``originals`` maps set names to the user's folders (``coco=DIR,imagenet=DIR,
    places=DIR``); a listed entry is looked up as ``DIR/<entry>``, ``DIR/<file name>``
    and, for ImageNet names, ``DIR/<wnid>/<file name>``. A forged image whose original
    cannot be found (no folder for its set, not listed, not on disk) becomes an invalid
    ref naming the item and the list file. ``methods`` and ``mask_types`` keep some
    (default: all); ``split`` keeps one split folder. No instruction is published
    (``instruction`` is None). Ids are ``brgen_[<split>_]<mask type>_<method>_<stem>``.
    """
    options_root = Path(path)
    if options_root.is_file():
        settings = read_dataset_file(options_root)
        options_root = settings.pop("root")
        originals = originals if originals is not None else settings.get("originals")
        methods = methods if methods is not None else settings.get("methods")
        mask_types = mask_types if mask_types is not None else settings.get("mask_types")
        split = split if split is not None else settings.get("split")
    root = options_root
    folders = parse_originals(originals)
    keep_methods = _names(methods, BRGEN_METHODS, "methods")
    keep_types = _names(mask_types, BRGEN_MASK_TYPES, "mask types")
    keep_split = BRGEN_SPLITS.get(_token(split)) if split else None
    if split and keep_split is None:
        raise ConfigError(f"BR-Gen split {split!r}: use train, test or val")
    if not (root / REAL_IMAGE_FOLDER).is_dir():
        yield PairRef.invalid("brgen", f"no {REAL_IMAGE_FOLDER}/ folder in {root}", str(root))
        return
    lists = RealImageLists(root)
    masks: dict[tuple[Any, ...], PurePosixPath] = {}
    forged: list[tuple[PurePosixPath, str | None, str, str]] = []
    for relative in _walk_images(root):
        file_split, mask_type, method, is_mask = _classify(relative)
        if mask_type is None or (keep_split and file_split != keep_split):
            continue
        if is_mask:
            masks.setdefault((file_split, mask_type, method, relative.stem), relative)
        elif method is not None and method in keep_methods and mask_type in keep_types:
            forged.append((relative, file_split, mask_type, method))
    ids = UniqueIds()
    for relative, file_split, mask_type, method in forged:
        yield ids.check(
            _brgen_ref(root, relative, file_split, mask_type, method, masks, lists, folders)
        )


def _brgen_ref(
    root: Path,
    relative: PurePosixPath,
    split: str | None,
    mask_type: str,
    method: str,
    masks: dict[tuple[Any, ...], PurePosixPath],
    lists: RealImageLists,
    folders: dict[str, Path],
) -> PairRef:
    stem = relative.stem
    item_id = "_".join(["brgen", *([split] if split else []), mask_type, method, stem])
    source = str(root / relative)
    mask = masks.get((split, mask_type, method, stem)) or masks.get((split, mask_type, None, stem))
    if mask is None:
        return PairRef.invalid(
            item_id, f"no region mask named {stem}.* under the {mask_type} masks", source
        )
    listed = lists.find(stem)
    if listed is None:
        names = ", ".join(str(f.relative_to(root)) for f in lists.files) or "none found"
        return PairRef.invalid(
            item_id, f"the real image of {stem} is not listed in {names}", source
        )
    set_name, entry, listing, line = listed
    where = f"{listing.relative_to(root)}:{line}"
    if set_name not in folders:
        return PairRef.invalid(
            item_id,
            f"original {entry!r} ({where}) is a {set_name} image; name the folder of your "
            f"{set_name} copy with --originals {set_name}=DIR",
            source,
        )
    original = resolve_original(folders[set_name], entry)
    if original is None:
        return PairRef.invalid(
            item_id, f"original {entry!r} ({where}) not found under {folders[set_name]}", source
        )
    return PairRef(
        id=item_id,
        original=original,
        edited=root / relative,
        instruction=None,
        mask=root / mask,
        source=source,
        meta={
            "benchmark": "brgen",
            "split": split,
            "mask_type": mask_type,
            "method": method,
            "real_set": set_name,
            "real_image": entry,
        },
    )


def looks_like_brgen(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in (".yaml", ".yml"):
            return False
        try:
            head = path.read_text(encoding="utf-8")[:4096]
        except (OSError, UnicodeDecodeError):
            return False
        return re.search(r"^format:\s*['\"]?brgen['\"]?\s*$", head, re.MULTILINE) is not None
    real = path / REAL_IMAGE_FOLDER
    return real.is_dir() and any(real.glob("*/*_image_list.txt"))


# The originals lie in the user's own COCO/ImageNet/Places copies, outside the download,
# and a dataset file may name a download elsewhere: the folder rule of the link check
# does not apply (docs/reliability.md).
register_format("brgen", iter_brgen, looks_like_brgen, files_inside=False)


def write_dataset_file(target: Path, dataset: Path, originals: Mapping[str, Any] | str) -> Path:
    """Write a BR-Gen dataset file at ``target`` naming ``dataset`` (a BR-Gen folder, or
    a dataset file whose other options are kept) with ``originals``; return ``target``.
    It is how ``train --originals`` hands the originals to the training code, which
    opens datasets by path only."""
    import yaml

    from ..io import atomic_write_text

    dataset = Path(dataset)
    settings: dict[str, Any] = {"format": "brgen"}
    if dataset.is_file():
        settings.update(read_dataset_file(dataset))
    else:
        settings["root"] = dataset
    settings["root"] = str(Path(settings["root"]).resolve())
    settings["originals"] = {
        name: str(folder.resolve()) for name, folder in parse_originals(originals).items()
    }
    for key in ("methods", "mask_types"):
        if isinstance(settings.get(key), str):
            settings[key] = [v.strip() for v in settings[key].split(",") if v.strip()]
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, yaml.safe_dump(settings, sort_keys=False))
    return target
