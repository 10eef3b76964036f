"""A tiny randomly initialised Stable Diffusion inpainting pipeline for tests and offline
runs of ``sigma-iml make-pairs --from-images DIR --inpaint MODEL``
(``sigma-iml dev tiny-weights`` writes it to ``DIR/inpaint``).

It is the real diffusers ``StableDiffusionInpaintPipeline`` — a 9-channel
``UNet2DConditionModel`` (4 latent + 1 mask + 4 masked-image latent channels), an
``AutoencoderKL``, a ``CLIPTextModel`` with its ``CLIPTokenizer`` and a DDIM scheduler —
at toy widths, saved with ``save_pretrained`` so that
``AutoPipelineForInpainting.from_pretrained(folder)`` loads it like a hub model. Its
output is noise: it exercises loading, masking, compositing and writing, not the
quality of an inpainting.

The tokenizer is built offline: a byte-level vocabulary (the 256 byte symbols, each also
with CLIP's end-of-word marker, plus the start and end tokens) and no merges, so every
prompt tokenizes character by character. No file is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from .autoencoders import TINY_AUTOENCODER_KL
from .network import seeded

#: ``UNet2DConditionModel`` at toy width; 9 input channels as SD inpainting models have.
TINY_INPAINT_UNET = dict(
    sample_size=16,
    in_channels=9,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=32,
)

#: The tiny ``AutoencoderKL`` of Stage II's partners (two blocks, 4 latent channels like
#: SD's VAE) at this pipeline's sample size.
TINY_INPAINT_VAE = {**TINY_AUTOENCODER_KL, "sample_size": 32}

#: CLIP text encoder at toy width; its width is the UNet's ``cross_attention_dim``.
TINY_TEXT_ENCODER = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
)

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE uses for the bytes 0..255 (GPT-2's
    table: printable Latin-1 bytes stand for themselves, the rest map above U+0100)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = {byte: byte for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in codes:
            codes[byte] = 256 + extra
            extra += 1
    return [chr(codes[byte]) for byte in range(256)]


def tiny_clip_vocabulary() -> dict[str, int]:
    """A CLIP vocabulary without merges: every byte symbol, every byte symbol with the
    end-of-word marker ``</w>``, then the start and end tokens (514 entries)."""
    symbols = _byte_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def write_tiny_inpainting_pipeline(directory: str | Path, *, seed: int = 0) -> Path:
    """Save a randomly initialised tiny SD inpainting pipeline to ``directory``
    (``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
    ``scheduler/``; no safety checker) and return the folder."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    directory = Path(directory)
    vocabulary = tiny_clip_vocabulary()
    tokenizer = CLIPTokenizer(vocab=vocabulary, merges=[], model_max_length=77)
    text_config = CLIPTextConfig(
        vocab_size=len(vocabulary),
        bos_token_id=vocabulary[START_TOKEN],
        eos_token_id=vocabulary[END_TOKEN],
        pad_token_id=vocabulary[END_TOKEN],
        **TINY_TEXT_ENCODER,
    )
    with seeded(seed):
        text_encoder = CLIPTextModel(text_config)
        unet = UNet2DConditionModel(**TINY_INPAINT_UNET)
        vae = AutoencoderKL(**TINY_INPAINT_VAE)
    # Stable Diffusion's noise schedule.
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory, safe_serialization=True)
    return directory


__all__ = ["tiny_clip_vocabulary", "write_tiny_inpainting_pipeline"]
