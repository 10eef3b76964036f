"""The frozen DINOv2 wrapper, through the real transformers loader on tiny configs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on the hub in tests

import pytest
import torch
from transformers import Dinov2Model

from sigma_iml.errors import ConfigError
from sigma_iml.models.backbone import DinoBackbone
from sigma_iml.models.config import BackboneConfig
from sigma_iml.testing import dinov2_config, write_dinov2


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_dinov2(tmp_path_factory.mktemp("dinov2"), seed=3)


def _images(batch=2, height=70, width=70, seed=0):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _reference_hidden_states(tiny_dir, images, config):
    model = Dinov2Model.from_pretrained(tiny_dir, local_files_only=True).eval()
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model((images - mean) / std, output_hidden_states=True)
    return model, out


def test_loads_saved_weights_through_from_pretrained(tiny_dir):
    saved = Dinov2Model.from_pretrained(tiny_dir, local_files_only=True)
    backbone = DinoBackbone.from_pretrained(
        BackboneConfig(name_or_path=str(tiny_dir)), local_files_only=True
    )
    loaded = backbone.model.state_dict()
    for key, value in saved.state_dict().items():
        if key.startswith("encoder.layer."):
            continue  # compared below: blocks kept
        assert torch.equal(loaded[key], value), key
    for index in range(12):
        assert torch.equal(
            backbone.model.encoder.layer[index].mlp.fc1.weight,
            saved.encoder.layer[index].mlp.fc1.weight,
        )
    assert backbone.model.config._attn_implementation == "sdpa"


def test_taken_layers_are_hidden_states_3_6_12_with_final_layernorm(tiny_dir):
    config = BackboneConfig(name_or_path=str(tiny_dir), image_size=(70, 70))
    backbone = DinoBackbone.from_pretrained(config, local_files_only=True)
    images = _images()
    maps = backbone(images)
    model, reference = _reference_hidden_states(tiny_dir, images, config)
    assert len(maps) == 3
    for taken, hidden_index in zip(maps, (3, 6, 12), strict=True):
        expected = model.layernorm(reference.hidden_states[hidden_index])[:, 1:, :]
        expected = expected.transpose(1, 2).reshape(2, 64, 5, 5)
        torch.testing.assert_close(taken, expected, rtol=1e-5, atol=1e-5)
    # Block 11 with the norm is exactly transformers' last_hidden_state.
    torch.testing.assert_close(
        maps[-1].flatten(2).transpose(1, 2),
        reference.last_hidden_state[:, 1:],
        rtol=1e-5,
        atol=1e-5,
    )


def test_layernorm_can_be_switched_off(tiny_dir):
    config = BackboneConfig(name_or_path=str(tiny_dir), image_size=(70, 70), apply_layernorm=False)
    backbone = DinoBackbone.from_pretrained(config, local_files_only=True)
    images = _images(seed=1)
    maps = backbone(images)
    _, reference = _reference_hidden_states(tiny_dir, images, config)
    expected = reference.hidden_states[6][:, 1:, :].transpose(1, 2).reshape(2, 64, 5, 5)
    torch.testing.assert_close(maps[1], expected, rtol=1e-5, atol=1e-5)


def test_blocks_after_the_last_needed_one_are_never_computed(tiny_dir):
    model = Dinov2Model.from_pretrained(tiny_dir, local_files_only=True)
    calls = [0] * 12
    for index, block in enumerate(model.encoder.layer):
        block.register_forward_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
    config = BackboneConfig(name_or_path=str(tiny_dir), layers=(1, 4), image_size=(42, 42))
    backbone = DinoBackbone(model, config)
    maps = backbone(_images(height=42, width=42))
    assert calls == [1] * 5 + [0] * 7
    assert backbone.num_blocks_run == 5 and backbone.total_blocks == 12
    assert [m.shape for m in maps] == [torch.Size([2, 64, 3, 3])] * 2


def test_non_square_and_large_input_sizes(tiny_dir):
    for size, grid in (((70, 112), (5, 8)), ((14, 28), (1, 2)), ((518, 518), (37, 37))):
        config = BackboneConfig(name_or_path=str(tiny_dir), image_size=size)
        backbone = DinoBackbone.from_pretrained(config, local_files_only=True)
        maps = backbone(_images(batch=1, height=size[0], width=size[1]))
        assert [m.shape for m in maps] == [torch.Size([1, 64, *grid])] * 3
        assert backbone.grid_size() == grid


def test_other_dinov2_sizes_and_register_tokens(tmp_path):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    small = write_dinov2(tmp_path / "small", hidden_size=48, num_hidden_layers=6, patch_size=8)
    config = BackboneConfig(name_or_path=str(small), layers=(1, 3, 5), image_size=(40, 48))
    maps = DinoBackbone.from_pretrained(config, local_files_only=True)(_images(1, 40, 48))
    assert [m.shape for m in maps] == [torch.Size([1, 48, 5, 6])] * 3

    registers = Dinov2WithRegistersModel(
        Dinov2WithRegistersConfig(
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=64,
            patch_size=14,
            image_size=56,
            num_register_tokens=4,
        )
    ).eval()
    registers.save_pretrained(tmp_path / "registers")
    config = BackboneConfig(
        name_or_path=str(tmp_path / "registers"), layers=(2,), image_size=(56, 56)
    )
    backbone = DinoBackbone.from_pretrained(config, local_files_only=True)
    assert backbone.num_prefix_tokens == 5
    images = _images(1, 56, 56)
    (taken,) = backbone(images)
    with torch.no_grad():
        reference = registers((images - backbone.mean) / backbone.std).last_hidden_state
    torch.testing.assert_close(
        taken.flatten(2).transpose(1, 2), reference[:, 5:], rtol=1e-5, atol=1e-5
    )


def test_backbone_is_frozen_and_stays_in_eval(tiny_dir):
    backbone = DinoBackbone.from_pretrained(
        BackboneConfig(name_or_path=str(tiny_dir), image_size=(28, 28)), local_files_only=True
    )
    backbone.train()
    assert not backbone.training and not backbone.model.training
    assert not any(p.requires_grad for p in backbone.parameters())
    images = _images(1, 28, 28).requires_grad_(True)
    assert not any(m.requires_grad for m in backbone(images))


def test_configuration_errors_are_clear(tiny_dir):
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        DinoBackbone.from_pretrained(
            BackboneConfig(name_or_path=str(tiny_dir), image_size=(50, 70)), local_files_only=True
        )
    with pytest.raises(ConfigError, match="has 12 blocks"):
        DinoBackbone.from_pretrained(
            BackboneConfig(name_or_path=str(tiny_dir), layers=(2, 12)), local_files_only=True
        )
    with pytest.raises(ConfigError, match="cannot load"):
        DinoBackbone.from_pretrained(
            BackboneConfig(name_or_path=str(tiny_dir / "missing")), local_files_only=True
        )
    with pytest.raises(ConfigError, match="increasing"):
        BackboneConfig(layers=(5, 2))


def test_tiny_config_is_the_documented_one():
    config = dinov2_config()
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.patch_size,
    ) == (64, 12, 4, 14)
