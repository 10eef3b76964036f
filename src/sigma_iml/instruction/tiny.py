"""Tiny randomly initialised parser and grounding models, written as Hugging Face folders.

``sigma-iml dev tiny-weights DIR`` writes them as ``DIR/qwen2``, ``DIR/grounding-dino`` and
``DIR/sam2`` so that the instruction branch runs offline with the real transformers
classes (``Qwen2ForCausalLM``, ``GroundingDinoForObjectDetection``, ``Sam2Model``). Their
outputs mean nothing: the LLM writes garbage (which exercises repair and the rule
fallback), the detector finds random boxes. Tokenizers are built here from small
vocabularies, with no download: a byte-level BPE trained in memory for Qwen2, a WordPiece
``vocab.txt`` for GroundingDINO's BERT. Every builder seeds its own RNG and leaves the
caller's global RNG state as it was.
"""

from __future__ import annotations

from pathlib import Path

import torch

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
_BERT_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] . , ' a an the of and cat dog hat person bird car tree "
    "sky red blue green white black man woman flowers wood marble umbrella table chair "
    "##s ##ing ##ed"
).split()


def _seeded(seed: int):
    fork = torch.random.fork_rng(devices=[])
    fork.__enter__()
    torch.manual_seed(seed)
    return fork


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


def write_tiny_qwen2(directory: str | Path, *, seed: int = 0) -> Path:
    """A 2-layer, hidden-64 ``Qwen2ForCausalLM`` and its tokenizer in ``directory``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    directory = Path(directory)
    tokenizer = tiny_qwen2_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    fork = _seeded(seed)
    try:
        model = Qwen2ForCausalLM(config)
    finally:
        fork.__exit__(None, None, None)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def write_tiny_grounding_dino(directory: str | Path, *, seed: int = 0) -> Path:
    """A GroundingDINO with a Swin of embed 32, depths [1,1,1,1], a 64-wide 2-layer BERT,
    d_model 64, 1 encoder / 2 decoder layers (the minimum that builds), 20 queries; with
    its BERT tokenizer and a PIL image processor at 256 px."""
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

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(_BERT_WORDS) + "\n")
    # transformers 5 reads the vocabulary from ``vocab=``; ``vocab_file=`` is ignored.
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    backbone = SwinConfig(
        embed_dim=32,
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        window_size=7,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=len(_BERT_WORDS),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
    )
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
    fork = _seeded(seed)
    try:
        model = GroundingDinoForObjectDetection(config)
    finally:
        fork.__exit__(None, None, None)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    GroundingDinoImageProcessorPil(
        size={"shortest_edge": 256, "longest_edge": 320}
    ).save_pretrained(directory)
    return directory


def write_tiny_sam2(directory: str | Path, *, seed: int = 0, image_size: int = 256) -> Path:
    """A ``Sam2Model`` with a four-stage Hiera of width 16 (five blocks) at ``image_size`` px
    (the released models use 1024), prompt encoder and mask decoder of width 32."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    directory = Path(directory)
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
    fork = _seeded(seed)
    try:
        model = Sam2Model(config)
    finally:
        fork.__exit__(None, None, None)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def write_tiny_instruction_models(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """``DIR/qwen2``, ``DIR/grounding-dino`` and ``DIR/sam2``."""
    directory = Path(directory)
    return {
        "qwen2": write_tiny_qwen2(directory / "qwen2", seed=seed),
        "grounding-dino": write_tiny_grounding_dino(directory / "grounding-dino", seed=seed),
        "sam2": write_tiny_sam2(directory / "sam2", seed=seed),
    }
