"""``sigma-iml weights download --to DIR``: the catalogue's models into one folder laid
out for ``--weights DIR`` (``DIR/owner--name``), with ``DIR/weights.json`` recording the
commit each model was downloaded at and each file's sha256, so a copy to an air-gapped
cluster can be checked and the same download repeated (``--from-manifest``)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..data.io import atomic_write_text
from ..errors import ConfigError
from .catalogue import CATALOGUE, HubModel, is_commit

#: The listing written next to the models.
WEIGHTS_MANIFEST = "weights.json"

_TRUE = frozenset({"1", "true", "yes", "on"})

# Seconds to wait for the hub's TCP port before calling the machine offline; a refused
# or unresolvable host fails at once.
_PROBE_TIMEOUT_S = 5.0


class OfflineError(ConfigError):
    """The hub cannot be reached: downloading is impossible here."""


def check_online(endpoint: str | None = None) -> None:
    """Fail at once (no retries) when downloads cannot work: ``HF_HUB_OFFLINE`` is set,
    or the hub's host does not answer."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            raise OfflineError(
                f"{variable} is set: downloading weights needs the network. Run "
                "`sigma-iml weights download --to DIR` on a machine with network, copy DIR "
                "here and use --weights DIR (or SIGMA_WEIGHTS=DIR)"
            )
    if endpoint is None:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise OfflineError(
            f"cannot reach {endpoint} ({err}): downloading weights needs the network. Run "
            "`sigma-iml weights download --to DIR` where there is network, copy DIR here and "
            "use --weights DIR (or SIGMA_WEIGHTS=DIR)"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` of every file under ``folder``, sorted;
    hidden entries (``huggingface_hub``'s ``.cache`` bookkeeping) are left out."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        files[relative.as_posix()] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    return files


def resolve_commit(hub_id: str, revision: str) -> str:
    """The commit ``revision`` (a branch, tag or commit) of ``hub_id`` points at now."""
    from huggingface_hub import HfApi

    return HfApi().model_info(hub_id, revision=revision).sha


def download_weights(
    directory: str | Path,
    models: Sequence[HubModel],
    *,
    fetch: Callable[..., Any] | None = None,
    resolve: Callable[[str, str], str] | None = None,
    progress: Callable[[HubModel], None] | None = None,
) -> Path:
    """Download ``models`` into ``directory/<owner--name>`` and write
    ``directory/weights.json``; returns its path.

    A revision that is not a commit hash (``main``) is resolved to the commit it points
    at first (``resolve``, by default :func:`resolve_commit`), and the files are fetched
    at that commit, so ``weights.json`` names exactly what was downloaded. ``fetch`` is
    ``huggingface_hub.snapshot_download`` (or a stand-in with its keywords). The network
    is checked first (:func:`check_online`), so an offline machine fails at once instead
    of after the hub client's retries.
    """
    check_online()
    if fetch is None:
        from huggingface_hub import snapshot_download as fetch
    if resolve is None:
        resolve = resolve_commit
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for model in models:
        if progress is not None:
            progress(model)
        commit = (
            model.revision if is_commit(model.revision) else resolve(model.hub_id, model.revision)
        )
        target = directory / model.folder
        fetch(
            repo_id=model.hub_id,
            revision=commit,
            allow_patterns=list(model.allow_patterns),
            local_dir=str(target),
        )
        files = folder_checksums(target)
        if not any(name.endswith(".safetensors") for name in files):
            raise ConfigError(
                f"{model.hub_id}@{commit}: no safetensors weights were downloaded "
                f"into {target} (pickled weights are not fetched)"
            )
        entries.append(
            {
                "name": model.name,
                "hub_id": model.hub_id,
                "revision": model.revision,
                "pinned": model.pinned,
                "commit": commit,
                "folder": model.folder,
                "files": files,
            }
        )
    manifest = directory / WEIGHTS_MANIFEST
    atomic_write_text(manifest, json.dumps({"models": entries}, indent=2) + "\n")
    return manifest


def models_from_manifest(manifest: str | Path) -> list[HubModel]:
    """The catalogue entries a ``weights.json`` lists, each pinned to the commit recorded
    there, so :func:`download_weights` fetches exactly those files again."""
    manifest = Path(manifest)
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{manifest}: not a readable {WEIGHTS_MANIFEST} ({err})") from None
    by_id = {model.hub_id: model for model in CATALOGUE}
    models = []
    for entry in entries:
        model = by_id.get(entry.get("hub_id", ""))
        if model is None:
            raise ConfigError(f"{manifest}: {entry.get('hub_id')!r} is not in the catalogue")
        # weights.json written before commits were recorded: only a pinned revision counts.
        commit = entry.get("commit") or entry.get("revision", "")
        if not is_commit(commit):
            raise ConfigError(
                f"{manifest}: {model.hub_id} records no commit (revision {commit!r}); "
                "download it again without --from-manifest to record one"
            )
        models.append(model.model_copy(update={"revision": commit, "pinned": True}))
    return models


def verify_weights(directory: str | Path) -> list[str]:
    """Problems found checking ``directory`` against its ``weights.json`` (missing or
    changed files); empty when every file matches."""
    directory = Path(directory)
    manifest = directory / WEIGHTS_MANIFEST
    if not manifest.is_file():
        raise ConfigError(f"{directory}: no {WEIGHTS_MANIFEST} (not a downloaded weights folder)")
    problems = []
    for entry in json.loads(manifest.read_text(encoding="utf-8"))["models"]:
        for name, expected in entry["files"].items():
            path = directory / entry["folder"] / name
            if not path.is_file():
                problems.append(f"{entry['folder']}/{name}: missing")
            elif _sha256(path) != expected["sha256"]:
                problems.append(f"{entry['folder']}/{name}: checksum differs")
    return problems
