"""The parser, GroundingDINO and SAM 2 load safetensors only: a folder whose weights are
a pickled ``pytorch_model.bin`` is refused with a named error and never unpickled."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sigma_iml.errors import ConfigError
from sigma_iml.instruction.grounding import load_grounding_models
from sigma_iml.instruction.llm import load_causal_lm


def _pickled_copy(model_dir: Path, destination: Path) -> Path:
    """``model_dir`` with its safetensors weights saved as a pickle instead, as
    ``save_pretrained(safe_serialization=False)`` wrote them."""
    shutil.copytree(model_dir, destination)
    weights = destination / "model.safetensors"
    torch.save(load_file(weights), destination / "pytorch_model.bin")
    weights.unlink()
    return destination


@pytest.fixture()
def no_torch_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called: a pickle was opened")

    monkeypatch.setattr(torch, "load", refuse)


def test_a_pickled_parser_model_is_refused(tiny_instruction_models, tmp_path, no_torch_load):
    pickled = _pickled_copy(tiny_instruction_models["qwen2"], tmp_path / "qwen2")
    with pytest.raises(ConfigError, match="cannot load the parser model"):
        load_causal_lm(str(pickled), "cpu", "float32", True)


@pytest.mark.parametrize("which", ["grounding-dino", "sam2"])
def test_pickled_grounding_models_are_refused(
    tiny_instruction_models, tmp_path, no_torch_load, which
):
    models = {k: str(v) for k, v in tiny_instruction_models.items()}
    models[which] = str(_pickled_copy(tiny_instruction_models[which], tmp_path / which))
    with pytest.raises(ConfigError, match="cannot load the grounding models"):
        load_grounding_models(models["grounding-dino"], models["sam2"], "cpu", True)
