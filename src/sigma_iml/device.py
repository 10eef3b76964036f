"""The one place the package chooses a device and a precision, at run time.

``device="auto"`` is CUDA when a GPU is visible, else CPU. ``precision="auto"`` is
bfloat16 where bfloat16 matrix products are fast (every CUDA GPU we target, and CPUs
with bf16 matrix units — Intel AMX — where a bf16 matmul runs several times the float32
rate) and float32 everywhere else (a CPU without bf16 units emulates it, slower than
float32). Machines differ, so this is detected each run, never assumed
(docs/design.md, "Device and precision").
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Literal

from .errors import ConfigError

if TYPE_CHECKING:  # torch is imported when a function runs: naming a precision is cheap
    import torch

#: What a user may ask for; ``auto`` is resolved by :func:`autocast_dtype`.
Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is taken as given
    (an unknown name, or CUDA asked for where there is none, is a ConfigError)."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: {err}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available")
    return resolved


@functools.cache
def cpu_has_bf16_matmul() -> bool:
    """True when this CPU multiplies bfloat16 matrices in hardware (AMX tiles).

    Asks PyTorch (``torch.cpu._is_amx_tile_supported``, which checks the CPU *and* that
    the OS enabled the tiles) and falls back to the oneDNN ISA PyTorch reports. AVX-512
    BF16 alone only converts; it does not make bf16 matmuls faster than float32.
    """
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except Exception:  # noqa: BLE001 - a probe that fails means "not known to have it"
            return False
    capability = str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")())
    return "AMX" in capability.upper()


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain float32."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_bf16_matmul():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """What records and summaries say ran: ``bf16`` or ``fp32``."""
    import torch

    return "bf16" if dtype == torch.bfloat16 else "fp32"


def weights_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype to load a frozen, inference-only model's weights in
    (``from_pretrained(dtype=...)``): the autocast dtype wherever bf16 runs, CPU
    included, else float32.

    Why not float32 weights under autocast on a CPU: autocast caches the bf16 cast of a
    weight only for tensors that require grad, so a frozen model's weights are cast again
    at every matmul of every call; for an LLM that is all of its weights at every
    generated token. Ops autocast keeps in float32 (norms, softmax) still get float32
    inputs. Trained weights (the SIGMA head) stay float32: autocast runs their products.
    """
    import torch

    dtype = autocast_dtype(device, precision)
    return torch.float32 if dtype is None else dtype


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A ``torch.autocast`` context for ``dtype``, or a no-op for float32."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
