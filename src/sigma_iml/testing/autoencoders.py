"""Tiny randomly initialised autoencoders for tests and offline runs of Stage II
(``sigma-iml dev tiny-weights``): the real diffusers classes at toy widths.

Their round trips do not reproduce the image (the weights are random): they exercise
the code path, shapes, padding, caching and timing, not the calibration itself. The
learning test uses the ``resynthesis`` partner for that reason.
"""

from __future__ import annotations

from pathlib import Path

from .network import save_random

#: ``AutoencoderKL`` at toy width: two blocks (so a downsampling factor of 2), 4 latent
#: channels like SD's VAE.
TINY_AUTOENCODER_KL = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=64,
)

#: ``AutoencoderTiny`` (TAESD's architecture) at toy width: two blocks of one layer.
TINY_AUTOENCODER_TINY = dict(
    in_channels=3,
    out_channels=3,
    encoder_block_out_channels=(16, 16),
    decoder_block_out_channels=(16, 16),
    num_encoder_blocks=(1, 1),
    num_decoder_blocks=(1, 1),
    latent_channels=4,
)


def write_tiny_vae(directory: str | Path, *, seed: int = 0, **overrides) -> Path:
    """Save a randomly initialised tiny ``AutoencoderKL`` (safetensors) to ``directory``;
    load it with ``PartnerConfig(kind="vae", name_or_path=directory, subfolder="")``."""
    from diffusers import AutoencoderKL

    config = {**TINY_AUTOENCODER_KL, **overrides}
    return save_random(lambda c: AutoencoderKL(**c), config, directory, seed=seed)


def write_tiny_taesd(directory: str | Path, *, seed: int = 0, **overrides) -> Path:
    """Save a randomly initialised tiny ``AutoencoderTiny`` to ``directory``; load it
    with ``PartnerConfig(kind="taesd", name_or_path=directory, subfolder="")``."""
    from diffusers import AutoencoderTiny

    config = {**TINY_AUTOENCODER_TINY, **overrides}
    return save_random(lambda c: AutoencoderTiny(**c), config, directory, seed=seed)


def write_tiny_autoencoders(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """``DIR/vae`` (tiny ``AutoencoderKL``) and ``DIR/taesd`` (tiny ``AutoencoderTiny``)."""
    directory = Path(directory)
    return {
        "vae": write_tiny_vae(directory / "vae", seed=seed),
        "taesd": write_tiny_taesd(directory / "taesd", seed=seed),
    }
