"""Randomly initialised parser and grounding models, written as Hugging Face folders.

``sigma-iml dev tiny-weights DIR`` writes the tiny ones as ``DIR/qwen2``,
``DIR/grounding-dino`` and ``DIR/sam2`` so that the instruction branch runs offline with
the real transformers classes (``Qwen2ForCausalLM``, ``GroundingDinoForObjectDetection``,
``Sam2Model``). ``size="paper"`` builds the paper's models at their real sizes (for
``benchmarks/``). Their outputs mean nothing: the LLM writes garbage (which exercises
repair and the rule fallback), the detector finds random boxes. Tokenizers are built here
from small vocabularies, with no download: a byte-level BPE trained in memory for Qwen2,
a WordPiece ``vocab.txt`` for GroundingDINO's BERT. Every builder seeds its own RNG and
leaves the caller's global RNG state as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .network import TINY_TRANSFORMER, ModelSize, save_random

#: ChatML, the template of Qwen2.5-Instruct, reduced to what the parser sends (a system
#: and user turns, then the generation prompt).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

#: A small text to train the BPE on: the vocabulary of editing instructions and JSON.
_BPE_CORPUS = [
    '{"original concept":"null","edited concept":"a bird","action type":"add"}',
    "add remove replace attribute change global null original edited concept action type",
    "You are an expert at understanding image editing instructions. Convert each "
    "instruction into EXACTLY one JSON object with these keys.",
    "the cat dog hat person umbrella red white flowers wood marble snowy make it turn into",
]

#: WordPiece vocabulary of the tiny GroundingDINO text encoder: BERT's special tokens, the
#: "." GroundingDINO ends prompts with, and a few concept words.
BERT_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] . , ' a an the of and cat dog hat person bird car tree "
    "sky red blue green white black man woman flowers wood marble umbrella table chair "
    "##s ##ing ##ed"
).split()

#: Qwen2.5-0.5B-Instruct's config.json values (hidden 896, 24 layers, 14 query / 2 KV
#: heads, intermediate 4864, vocabulary 151,936, tied embeddings).
QWEN25_05B = dict(
    vocab_size=151_936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32_768,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
)
#: A 2-layer, hidden-64 Qwen2 (its vocabulary is the tokenizer's).
TINY_QWEN2 = dict(**TINY_TRANSFORMER, num_key_value_heads=2, max_position_embeddings=2048)


def tiny_qwen2_tokenizer():
    """A byte-level BPE with Qwen's special tokens and a hand-set ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_BPE_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def write_qwen2(
    directory: str | Path,
    *,
    seed: int = 0,
    size: ModelSize = "tiny",
    tokenizer: Any = None,
    dtype: Any = None,
    **overrides: Any,
) -> Path:
    """A ``Qwen2ForCausalLM`` (tiny: :data:`TINY_QWEN2`; paper: :data:`QWEN25_05B`) and
    ``tokenizer`` (default :func:`tiny_qwen2_tokenizer`) in ``directory``; ``dtype``:
    the dtype it is stored in (None: float32); ``overrides``: ``Qwen2Config`` values."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = tokenizer if tokenizer is not None else tiny_qwen2_tokenizer()
    sizes = QWEN25_05B if size == "paper" else {**TINY_QWEN2, "vocab_size": len(tokenizer)}
    config = Qwen2Config(
        **{**sizes, **overrides},
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )

    def prepare(model: Any) -> Any:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model if dtype is None else model.to(dtype)

    directory = save_random(Qwen2ForCausalLM, config, directory, seed=seed, prepare=prepare)
    tokenizer.save_pretrained(directory)
    return directory


def write_grounding_dino(
    directory: str | Path, *, seed: int = 0, size: ModelSize = "tiny", words: Any = None
) -> Path:
    """A ``GroundingDinoForObjectDetection`` with a BERT tokenizer of ``words`` (default
    :data:`BERT_WORDS`) and a PIL image processor. Tiny: a Swin of embed 32, depths
    [1,1,1,1], a 64-wide 2-layer BERT, d_model 64, 1 encoder / 2 decoder layers (the
    minimum that builds), 20 queries, images at 256 px. Paper: GroundingDINO-Base
    (``IDEA-Research/grounding-dino-base``: Swin-B, embed 128, depths 2-2-18-2, window 12;
    BERT-base text encoder, whose 30,522 rows are kept; 900 queries, 6 + 6 layers) with
    the default image processor (shortest edge 800, longest 1333)."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        SwinConfig,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    words = list(words if words is not None else BERT_WORDS)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    # transformers 5 reads the vocabulary from ``vocab=``; ``vocab_file=`` is ignored.
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    if size == "paper":
        swin_base = SwinConfig(
            embed_dim=128,
            depths=[2, 2, 18, 2],
            num_heads=[4, 8, 16, 32],
            window_size=12,
            image_size=384,
            out_features=["stage2", "stage3", "stage4"],
        )
        config = GroundingDinoConfig(backbone_config=swin_base, text_config=BertConfig())
        processor = GroundingDinoImageProcessorPil()
    else:
        backbone = SwinConfig(
            embed_dim=32,
            depths=[1, 1, 1, 1],
            num_heads=[1, 2, 4, 8],
            window_size=7,
            out_features=["stage2", "stage3", "stage4"],
        )
        text = BertConfig(vocab_size=len(words), **TINY_TRANSFORMER, max_position_embeddings=256)
        config = GroundingDinoConfig(
            backbone_config=backbone,
            text_config=text,
            d_model=64,
            encoder_layers=1,
            decoder_layers=2,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            num_queries=20,
            num_feature_levels=4,
        )
        processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 256, "longest_edge": 320})
    save_random(GroundingDinoForObjectDetection, config, directory, seed=seed)
    tokenizer.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def write_sam2(
    directory: str | Path, *, seed: int = 0, size: ModelSize = "tiny", image_size: int = 256
) -> Path:
    """A ``Sam2Model``. Tiny: a four-stage Hiera of width 16 (five blocks) at
    ``image_size`` px (the released models use 1024), prompt encoder and mask decoder of
    width 32. Paper: SAM 2.1 Hiera-S (``facebook/sam2.1-hiera-small``: width 96, stages
    1-2-11-2, global attention in blocks 7, 10, 13) at 1024 px."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    if size == "paper":
        hiera_small = Sam2HieraDetConfig(
            hidden_size=96,
            num_attention_heads=1,
            blocks_per_stage=[1, 2, 11, 2],
            global_attention_blocks=[7, 10, 13],
            window_positional_embedding_background_size=[7, 7],
        )
        config = Sam2Config(vision_config=Sam2VisionConfig(backbone_config=hiera_small))
        return save_random(Sam2Model, config, directory, seed=seed)
    stride = 4  # Hiera's patch embedding stride
    sizes = [[image_size // (stride * 2**i)] * 2 for i in range(3)]
    hiera = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[image_size, image_size],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 4],
        window_size_per_stage=[8, 4, 4, 4],
        global_attention_blocks=[3],  # not the first block of a stage (query pooling)
        window_positional_embedding_background_size=[4, 4],
    )
    vision = Sam2VisionConfig(
        backbone_config=hiera,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=sizes,
        fpn_hidden_size=32,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(
            hidden_size=32, image_size=image_size, patch_size=16
        ),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    return save_random(Sam2Model, config, directory, seed=seed)


def write_tiny_instruction_models(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """``DIR/qwen2``, ``DIR/grounding-dino`` and ``DIR/sam2``."""
    directory = Path(directory)
    return {
        "qwen2": write_qwen2(directory / "qwen2", seed=seed),
        "grounding-dino": write_grounding_dino(directory / "grounding-dino", seed=seed),
        "sam2": write_sam2(directory / "sam2", seed=seed),
    }
