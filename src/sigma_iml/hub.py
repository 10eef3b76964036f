"""Where a model's files come from: the Hugging Face hub, or a local weights folder.

Every ``from_pretrained`` in the package passes its hub id or folder through
:func:`resolve_pretrained`. With a weights folder set (``--weights DIR`` or the
``SIGMA_WEIGHTS`` environment variable), a hub id ``owner/name`` is looked up as
``DIR/owner--name`` (the layout ``sigma-iml weights download --to DIR`` writes) and loaded
with ``local_files_only=True``: nothing touches the network, the air-gapped cluster case
(docs/gpu.md). A model missing from the folder is an error naming the folder it looked
for, not a hub download that retries for half a minute.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: The environment variable naming the weights folder (``--weights DIR`` sets it).
WEIGHTS_ENV = "SIGMA_WEIGHTS"

# A hub repository id: ``owner/name`` (letters, digits, ``-``, ``_``, ``.``).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def folder_name(hub_id: str) -> str:
    """The folder a hub model lives in inside a weights folder: ``owner--name`` (the
    separator the hub's own cache uses, so names never collide)."""
    if not _HUB_ID.match(hub_id):
        raise ConfigError(f"{hub_id!r} is not a hub model id (owner/name)")
    return hub_id.replace("/", "--")


def is_hub_id(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names a hub model rather than an existing local folder."""
    return bool(_HUB_ID.match(name_or_path)) and not Path(name_or_path).expanduser().exists()


def weights_dir() -> Path | None:
    """The weights folder set through ``SIGMA_WEIGHTS`` (``--weights``), or None."""
    value = os.environ.get(WEIGHTS_ENV, "").strip()
    if not value:
        return None
    directory = Path(value).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"weights folder {directory} ({WEIGHTS_ENV} / --weights) is not a folder")
    return directory


def set_weights_dir(directory: str | os.PathLike | None) -> None:
    """Use ``directory`` as the weights folder for this process and the workers it starts
    (through the environment, so Ray workers and subprocesses see it too); None clears it."""
    if directory is None:
        os.environ.pop(WEIGHTS_ENV, None)
        return
    path = Path(directory).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"--weights {directory}: not a folder")
    os.environ[WEIGHTS_ENV] = str(path)


def resolve_pretrained(name_or_path: str, local_files_only: bool = False) -> tuple[str, bool]:
    """``(source, local_files_only)`` to hand to ``from_pretrained``.

    Without a weights folder: unchanged. With one: a hub id becomes its folder inside it
    (an error when the folder is missing), and every load is local-only; a local path is
    kept as it is.
    """
    directory = weights_dir()
    if directory is None:
        return name_or_path, local_files_only
    if not is_hub_id(name_or_path):
        return name_or_path, True
    folder = directory / folder_name(name_or_path)
    if not folder.is_dir():
        raise ConfigError(
            f"model {name_or_path!r} is not in the weights folder {directory} (looked for "
            f"{folder}); fetch it with `sigma-iml weights download --to {directory}` on a "
            f"machine with network, or unset {WEIGHTS_ENV} / --weights"
        )
    return str(folder), True


def _safetensors_variant(name: str) -> str | None:
    """``fp16`` for ``model.fp16.safetensors`` or ``model.fp16-00001-of-00002.safetensors``
    (diffusers' variant names), None for a plain ``model.safetensors``."""
    parts = name[: -len(".safetensors")].split(".")
    return parts[-1].split("-", 1)[0] if len(parts) > 1 else None


def load_variant(
    load: Callable[[str | None], T], source: str, what: str, subfolder: str | None = None
) -> T:
    """``load(variant)`` for each of :func:`weight_variants` in turn until one loads;
    when none does, a ConfigError naming ``what`` and every attempt's error."""
    errors = []
    for variant in weight_variants(source, subfolder):
        try:
            return load(variant)
        except (OSError, ValueError) as err:
            errors.append(f"{err} (variant {variant or 'none'})")
    raise ConfigError(f"cannot load {what}: " + "; ".join(errors))


def weight_variants(source: str, subfolder: str | None = None) -> tuple[str | None, ...]:
    """The ``variant`` values to try, in order, when ``from_pretrained(source)`` loads
    safetensors weights (None: the plain files).

    Some hub repositories publish a component only as an fp16 variant
    (``unet/diffusion_pytorch_model.fp16.safetensors``: SD 1.5 inpainting), and diffusers
    finds such files only when told the variant. A local folder (``subfolder`` inside it,
    or a pipeline's component folders) says which it holds: the variant when some folder
    has variant files and no plain ones, else None. A hub id cannot be looked into without
    a download, so it gets ``(None, "fp16")``: plain first, then fp16.
    """
    root = Path(source).expanduser()
    if not root.is_dir():
        return (None, "fp16")
    root = root / subfolder if subfolder else root
    folders = [root] if subfolder else [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for folder in folders:
        variants = {_safetensors_variant(p.name) for p in folder.glob("*.safetensors")}
        if variants and None not in variants:
            # fp16 first when a folder holds several variants (fp16 and bf16, say).
            return (min(variants, key=lambda v: (v != "fp16", v)),)
    return (None,)
