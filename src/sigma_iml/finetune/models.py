"""The detectors ``sigma-iml finetune --model NAME`` knows, with IMDL-BenCo's settings.

Each preset names an IMDL-BenCo model class and the training settings of IMDL-BenCo's
own demo script for it (``IMDLBenCo/statics/model_zoo/runs/demo_train_<model>.sh``):
image size, resize or pad, learning rate, batch size, edge-mask width, flags. The paper
does not print its fine-tuning settings (docs/finetune.md), so these are IMDL-BenCo's.

Only ``pscc_net`` trains from scratch with nothing to download (its HRNet starts from
random weights when ``pretrain_path`` is empty), which is why it is the default and what
the CPU test trains; the others need the weights listed in ``weights`` (paths given with
``--model-arg``). Any other IMDL-BenCo model class can be named as it is registered
(``--model Mesorch``), with its constructor arguments as ``--model-arg key=value``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..config import ConfigModel
from ..errors import ConfigError


class DetectorPreset(ConfigModel):
    #: The class name in IMDL-BenCo's ``MODELS`` registry.
    imdlbenco_model: str
    image_size: int = Field(default=512, gt=0)
    #: True: IMDL-BenCo's ``--if_resizing``; False: ``--if_padding``.
    resize: bool = True
    lr: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=8, gt=0)
    edge_mask_width: int | None = None
    predict_label: bool = False
    no_model_eval: bool = False
    #: Constructor arguments; ``{image_size}`` in a string is replaced by the image size.
    model_args: dict[str, Any] = Field(default_factory=dict)
    #: Constructor arguments that must point at downloaded weights, with where to get them.
    weights: dict[str, str] = Field(default_factory=dict)
    #: The paper's name of the detector (Table 2).
    paper_name: str = ""


#: Each preset's demo script: IMDL-BenCo class, paper name, image size, learning rate and
#: batch size. Every one of those scripts trains with ``--edge_mask_width 7``.
_DEMO_SCRIPTS: dict[str, tuple[str, str, int, float, int]] = {
    "pscc_net": ("PSCC_Net", "PSCC-Net", 256, 1e-4, 16),
    "cat_net": ("Cat_Net", "CAT-Net", 512, 1e-4, 32),
    "mvss_net": ("MVSSNet", "MVSS-Net", 512, 2e-5, 1),
    "iml_vit": ("IML_ViT", "IML-ViT", 1024, 1e-4, 2),
    "trufor": ("Trufor", "TruFor", 512, 4e-6, 8),
}

#: The rest of each demo script: flags, constructor arguments, the weights it needs.
_DEMO_SCRIPT_EXTRAS: dict[str, dict[str, Any]] = {
    "pscc_net": {
        "predict_label": True,
        # An empty path: IMDL-BenCo's HRNet keeps its random initialisation.
        "model_args": {"input_size": "{image_size}", "pretrain_path": ""},
        "weights": {
            "pretrain_path": "hrnet_w18_small_v2.pth (HRNet-W18-small-v2, ImageNet; optional)"
        },
    },
    "cat_net": {
        "weights": {
            "cfg_file": "CAT_full.yaml naming hrnetv2_w48_imagenet_pretrained.pth and "
            "DCT_djpeg.pth.tar (CAT-Net's release); Cat_Net builds its loss on CUDA",
        },
    },
    "mvss_net": {
        "no_model_eval": True,
        "weights": {"(torchvision)": "ResNet-50 ImageNet weights, downloaded by torchvision"},
    },
    "iml_vit": {
        "resize": False,
        "model_args": {"edge_lambda": 20},
        "weights": {"vit_pretrain_path": "mae_pretrain_vit_base.pth (MAE ViT-B/16)"},
    },
    "trufor": {
        "predict_label": True,
        "model_args": {"phase": 2, "det_resume_ckpt": ""},
        "weights": {
            "np_pretrain_weights": "noiseprint.pth (Noiseprint++)",
            "mit_b2_pretrain_weights": "mit_b2.pth (SegFormer MiT-B2)",
            "config_path": "trufor.yaml (IMDL-BenCo's statics/model_zoo/configs)",
        },
    },
}

PRESETS: dict[str, DetectorPreset] = {
    key: DetectorPreset(
        imdlbenco_model=model,
        paper_name=paper_name,
        image_size=image_size,
        lr=lr,
        batch_size=batch_size,
        edge_mask_width=7,
        **_DEMO_SCRIPT_EXTRAS[key],
    )
    for key, (model, paper_name, image_size, lr, batch_size) in _DEMO_SCRIPTS.items()
}

DEFAULT_MODEL = "pscc_net"


def resolve_model(name: str, image_size: int | None = None) -> tuple[DetectorPreset, str]:
    """The preset for ``name`` (a preset key, or an IMDL-BenCo class name, which gets
    IMDL-BenCo's generic defaults) and the key it was found under."""
    key = name.strip()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()], key.lower()
    for preset_key, preset in PRESETS.items():
        if preset.imdlbenco_model == key:
            return preset, preset_key
    if not key or not key.replace("_", "").isalnum():
        raise ConfigError(
            f"unknown detector {name!r}; presets: {', '.join(PRESETS)}, or an IMDL-BenCo "
            "model class name"
        )
    return DetectorPreset(imdlbenco_model=key), key


def model_arguments(preset: DetectorPreset, image_size: int, extra: dict[str, Any]) -> dict:
    """The preset's constructor arguments with ``{image_size}`` filled in, then ``extra``."""
    filled: dict[str, Any] = {}
    for key, value in preset.model_args.items():
        if value == "{image_size}":
            value = image_size
        filled[key] = value
    filled.update(extra)
    return filled
