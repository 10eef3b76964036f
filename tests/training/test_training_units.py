"""Unit tests of the training pieces: augmentation, losses, schedule, EMA, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sigma_iml.errors import ConfigError
from sigma_iml.training.config import AugmentConfig, OptimizerConfig, TrainConfig
from sigma_iml.training.datasets import epoch_batches
from sigma_iml.training.ema import EmaTeacher
from sigma_iml.training.losses import (
    calibration_loss,
    dice_loss,
    disentanglement_loss,
    pseudo_labels,
    qes,
    segmentation_loss,
    self_training_loss,
)
from sigma_iml.training.schedule import learning_rate
from sigma_iml.training.transforms import AugmentDraw, apply_augmentation, draw_augmentation

# ---------------------------------------------------------------------- augmentation


def _marked_pair(rng: np.random.Generator, height: int = 60, width: int = 80):
    """A pair whose edited image differs from the original exactly on the mask, by a
    constant the test can recognise after any crop, flip and resize."""
    original = rng.integers(0, 200, size=(height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), bool)
    mask[10:35, 5:30] = True  # an asymmetric block: a flip moves it
    edited = original.copy()
    edited[mask] = 255
    return original, edited, mask


@pytest.mark.parametrize("seed", range(12))
def test_synchronized_augmentation_keeps_images_and_mask_aligned(seed: int) -> None:
    rng = np.random.default_rng(seed)
    original, edited, mask = _marked_pair(rng)
    config = AugmentConfig(hflip_probability=0.5, crop_scale=(0.5, 1.0))
    draw = draw_augmentation(mask.shape, config, rng)
    (out_o, out_e), out_m = apply_augmentation([original, edited], mask, draw, (48, 48))
    assert out_o.shape == out_e.shape == (48, 48, 3) and out_m.shape == (48, 48)
    assert out_m.dtype == bool
    # Nearest-resized mask pixels are exactly where the edited image is the marker
    # colour; away from the block's edge (bilinear blending there) they agree.
    from scipy.ndimage import binary_erosion

    inside = binary_erosion(out_m, iterations=2)
    outside = binary_erosion(~out_m, iterations=2)
    assert np.all(out_e[inside] == 255)
    assert np.array_equal(out_o[outside], out_e[outside])

    # Same draw, applied to the original twice: identical (one window for everything).
    (again,), _ = apply_augmentation([original], None, draw, (48, 48))
    assert np.array_equal(again, out_o)


def test_flip_mirrors_every_view_and_crop_takes_the_window() -> None:
    rng = np.random.default_rng(0)
    original, edited, mask = _marked_pair(rng)
    draw = AugmentDraw(top=10, left=5, height=25, width=25, flip=True)
    (out_o, out_e), out_m = apply_augmentation([original, edited], mask, draw, (25, 25))
    assert out_m.all()  # the window is exactly the block
    assert np.array_equal(out_o, original[10:35, 5:30][:, ::-1])
    identity = AugmentDraw.identity(60, 80)
    (plain,), plain_mask = apply_augmentation([original], mask, identity, (60, 80))
    assert np.array_equal(plain, original) and np.array_equal(plain_mask, mask)


def test_augmentation_draws_respect_the_config() -> None:
    rng = np.random.default_rng(1)
    config = AugmentConfig(hflip_probability=0.0, crop_scale=(1.0, 1.0))
    for _ in range(20):
        draw = draw_augmentation((50, 70), config, rng)
        assert draw == AugmentDraw(0, 0, 50, 70, False)
    flips = [
        draw_augmentation((50, 70), AugmentConfig(hflip_probability=0.5), rng).flip
        for _ in range(400)
    ]
    assert 0.4 < np.mean(flips) < 0.6


def test_epoch_order_is_a_deterministic_permutation() -> None:
    first = np.concatenate(epoch_batches(19, 4, seed=3, epoch=2))
    assert sorted(first) == list(range(19))
    assert np.array_equal(first, np.concatenate(epoch_batches(19, 4, seed=3, epoch=2)))
    assert not np.array_equal(first, np.concatenate(epoch_batches(19, 4, seed=3, epoch=3)))
    assert [len(b) for b in epoch_batches(19, 4, seed=3, epoch=2)] == [4, 4, 4, 4, 3]


# --------------------------------------------------------------------------- losses


def test_segmentation_loss_is_small_for_the_right_mask_and_large_for_the_wrong_one() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    right = (target * 2 - 1) * 10.0
    wrong = -right
    good, parts = segmentation_loss(right, target)
    bad, _ = segmentation_loss(wrong, target)
    assert good < 0.01 and bad > 5.0
    assert set(parts) == {"bce", "dice"}
    # Dice alone: 1 - 2|A∩B|/(|A|+|B|) with smoothing 1.
    half = torch.full((1, 1, 2, 2), 0.0)  # p = 0.5 everywhere
    one = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    expected = 1 - (2 * 1.0 + 1) / (2.0 + 2.0 + 1)
    assert math.isclose(float(dice_loss(half, one)), expected, rel_tol=1e-6)


def test_calibration_loss_pushes_towards_an_empty_mask() -> None:
    assert calibration_loss(torch.full((1, 1, 4, 4), -8.0)) < 1e-3
    assert calibration_loss(torch.full((1, 1, 4, 4), 3.0)) > 3.0


def test_pseudo_labels_keep_confident_pixels_and_qes_filters_masks() -> None:
    p = torch.tensor([[[[0.95, 0.05], [0.6, 0.3]]], [[[0.7, 0.8], [0.05, 0.02]]]])
    labels, weights = pseudo_labels(p, threshold=0.9)
    assert labels[0, 0].tolist() == [[1, 0], [1, 0]]
    assert weights[0, 0].tolist() == [[1, 1], [0, 0]]
    assert weights[1, 0].tolist() == [[0, 0], [1, 1]]
    # QES: image 0 has support {0.95, 0.6, 0.3} and one pixel > 15/16 -> 1/3;
    # image 1 has support {0.7, 0.8} and none > 15/16 -> 0.
    assert torch.allclose(qes(p), torch.tensor([1 / 3, 0.0]))
    _, filtered = pseudo_labels(p, threshold=0.9, min_qes=0.3)
    assert filtered[0].sum() == 2 and filtered[1].sum() == 0
    # L_st only counts the weighted pixels.
    logits = torch.zeros_like(p)
    loss = self_training_loss(logits, labels, weights)
    assert math.isclose(float(loss), math.log(2), rel_tol=1e-5)
    assert float(self_training_loss(logits, labels, torch.zeros_like(p))) == 0.0


def test_disentanglement_loss_penalises_aligned_vectors_on_the_support_only() -> None:
    real = [torch.randn(1, 8, 4, 4)]
    support = torch.zeros(1, 1, 16, 16)
    support[..., :8, :8] = 1  # the top-left 2x2 grid cells
    aligned = disentanglement_loss(real, [real[0] * 3.0], support)
    assert math.isclose(float(aligned), 1.0, rel_tol=1e-5)
    opposite = disentanglement_loss(real, [-real[0]], support)
    assert float(opposite) == 0.0
    # Aligned off the support only: no penalty.
    noise = -real[0].clone()
    noise[..., 2:, 2:] = real[0][..., 2:, 2:]
    assert float(disentanglement_loss(real, [noise], support)) == 0.0
    assert float(disentanglement_loss(real, [real[0]], torch.zeros(1, 1, 16, 16))) == 0.0
    # The gradient reaches the real pair's vectors.
    leaf = real[0].clone().requires_grad_(True)
    disentanglement_loss([leaf], [real[0]], support).backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


# ------------------------------------------------------------------- schedule, EMA


def test_learning_rate_warms_up_then_follows_a_cosine_to_the_floor() -> None:
    config = OptimizerConfig(lr=1.0, warmup_fraction=0.1, min_lr_ratio=0.01)
    rates = [learning_rate(step, 100, config) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(0.01, abs=1e-3)
    mid = 10 + 45
    assert rates[mid] == pytest.approx(0.01 + 0.99 * 0.5, abs=0.02)


def test_ema_update_is_the_momentum_average() -> None:
    student = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    teacher = EmaTeacher(student, momentum=0.9)
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    with torch.no_grad():
        for param in student.parameters():
            param.add_(1.0)
    teacher.update(student)
    for name, param in student.named_parameters():
        expected = 0.9 * before[name] + 0.1 * param
        assert torch.allclose(teacher.module.state_dict()[name], expected, atol=1e-6)
    assert not any(p.requires_grad for p in teacher.module.parameters())
    teacher.train()
    assert not teacher.module.training


# --------------------------------------------------------------------------- config


def test_config_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="optimiser: unknown setting"):
        TrainConfig.from_dict({"optimiser": {}})
    with pytest.raises(ConfigError, match=r"stage2\.partner\.knd: unknown setting"):
        TrainConfig.from_dict({"stage2": {"partner": {"knd": "vae"}}})
    with pytest.raises(ConfigError, match="micro_batch_size"):
        TrainConfig.from_dict({"batch_size": 8, "micro_batch_size": 3})
    with pytest.raises(ConfigError, match="partner.kind"):
        TrainConfig.from_dict({"stage2": {"partner": {"kind": "gan"}}})
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "fp16"})
    with pytest.raises(ConfigError, match="cache_dtype"):
        TrainConfig.from_dict({"cache_dtype": "bfloat16"})
    with pytest.raises(ConfigError, match="TrainConfig: epochs"):  # from Python, too
        TrainConfig(epochs="many")
    with pytest.raises(ConfigError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.0, 1.0))
    config = TrainConfig.from_dict(
        {"batch_size": 8, "micro_batch_size": 2, "stage2": {"partner": {"kind": "taesd"}}}
    )
    assert config.accumulation_steps == 4 and config.stage2.partner.kind == "taesd"
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_shipped_configs_load() -> None:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "configs" / "train"
    stage1 = TrainConfig.load(folder / "stage1.yaml")
    stage2 = TrainConfig.load(folder / "stage2.yaml")
    assert stage1.epochs == 10 and stage1.batch_size == 8  # paper
    assert stage1.model.backbone.image_size == (518, 518)  # paper
    assert stage2.epochs == 5 and stage2.model is None  # paper; model from --init
    assert (stage2.stage2.lambda_cal, stage2.stage2.lambda_st, stage2.stage2.lambda_dis) == (
        0.5,
        0.5,
        0.1,
    )
    TrainConfig.load(folder / "tiny-cpu.yaml")


def test_tensors_stay_in_unit_range_for_the_backbone_to_normalise() -> None:
    # DinoBackbone.forward applies the ImageNet mean/std itself: the training tensors
    # must be plain [0, 1] values, as the annotator feeds them.
    from sigma_iml.training.transforms import image_tensor, mask_tensor

    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (255, 128, 0)
    tensor = image_tensor(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    assert tensor[:, 0, 0].tolist() == pytest.approx([1.0, 128 / 255, 0.0])
    assert mask_tensor(np.eye(2, dtype=bool)).tolist() == [[[1.0, 0.0], [0.0, 1.0]]]


def test_training_qes_follows_the_annotation_convention_including_empty_maps() -> None:
    """One QES convention (the peer's): an empty map scores 0 in training and annotation."""
    from sigma_iml.annotation.quality import qes as annotation_qes

    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(4, 1, 8, 8, generator=generator) ** 3
    maps[0] = 0.0  # predicts nothing
    maps[1] = 1.0  # all confident
    expected = [annotation_qes(m[0].numpy()) for m in maps]
    assert expected[0] == 0.0 and expected[1] == 1.0
    assert torch.allclose(qes(maps), torch.tensor(expected), atol=1e-6)


# ---------------------------------------------------------------------------- state


def test_progress_round_trips_through_the_state_file(tmp_path) -> None:
    import json

    from sigma_iml.models.config import SigmaConfig
    from sigma_iml.training.state import (
        STATE_FILE,
        Best,
        Progress,
        load_training_state,
        save_training_state,
    )

    head = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    head(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    progress = Progress(step=5, epoch=1, batch=2, labeled=7, best=Best("val_f1", 0.25, 4))
    save_training_state(
        tmp_path / "last",
        head=head,
        model_config=SigmaConfig(),
        optimizer=optimizer,
        progress=progress,
        train_config={"stage": "stage2"},
    )
    stored = json.loads((tmp_path / "last" / STATE_FILE).read_text())
    assert stored["progress"] == {
        "step": 5,
        "epoch": 1,
        "batch": 2,
        "labeled": 7,
        "best": {"metric": "val_f1", "score": 0.25, "step": 4},
    }
    fresh = torch.nn.Linear(3, 2)
    document = load_training_state(
        tmp_path / "last", head=fresh, optimizer=torch.optim.AdamW(fresh.parameters())
    )
    assert document["progress"] == progress
    assert torch.equal(fresh.weight, head.weight)
    # Which score is better depends on the metric.
    assert Best("val_f1", 0.3, 6).improves_on(progress.best)
    assert not Best("train_loss", 0.3, 6).improves_on(Best("train_loss", 0.2, 3))
    assert Best("train_loss", 0.3, 6).improves_on(None)
    # A state of another format version is refused, not resumed at a guessed position.
    stored["format_version"] = 1
    (tmp_path / "last" / STATE_FILE).write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match="version-2"):
        load_training_state(
            tmp_path / "last", head=fresh, optimizer=torch.optim.AdamW(fresh.parameters())
        )


def test_config_errors_name_the_file_and_the_field(tmp_path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 2\nstage2:\n  partner:\n    kind: gan\n")
    with pytest.raises(ConfigError, match="stage2.partner.kind") as caught:
        TrainConfig.load(path)
    assert str(path) in str(caught.value)
    path.write_text("model:\n  head:\n    num_drb: 2\n    bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus") as caught:
        TrainConfig.load(path)
    assert f"{path}: model" in str(caught.value)


def test_training_reads_a_corpus_with_the_columns_the_command_line_names(tmp_path) -> None:
    """``train ... --columns`` reaches the training data's reader (issue 12): a parquet
    shard with non-preset column names lists its pairs."""
    import io as _io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from sigma_iml.cli.train import _data_options
    from sigma_iml.training.datasets import list_pairs

    def png(value: int) -> bytes:
        buffer = _io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "before": pa.array([{"bytes": png(v), "path": None} for v in (1, 2)], type=image),
            "after": pa.array([{"bytes": png(v + 9), "path": None} for v in (1, 2)], type=image),
            "prompt": ["make it red", "remove the cup"],
        }
    )
    pq.write_table(table, tmp_path / "shard.parquet")
    options = _data_options("original=before,edited=after,instruction=prompt", None)
    assert options == {
        "format": "parquet",
        "columns": "original=before,edited=after,instruction=prompt",
    }
    refs = list_pairs(tmp_path / "shard.parquet", require_masks=False, **options)
    assert [ref.instruction for ref in refs] == ["make it red", "remove the cup"]
    assert _data_options(None, None) == {}


def _concept_ref(tmp_path, action=None, original=None, edited=None):
    """A ref with concept masks drawn as boxes ``(x0, y0, x1, y1)`` on a 40x40 image."""
    from PIL import Image

    from sigma_iml.data.pair import PairRef

    paths = {}
    for name, box in (("original_concept_mask", original), ("edited_concept_mask", edited)):
        if box is None:
            continue
        mask = np.zeros((40, 40), np.uint8)
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
        paths[name] = tmp_path / f"{name}-{x0}-{y0}.png"
        Image.fromarray(mask).save(paths[name])
    meta = {} if action is None else {"action": action}
    return PairRef(id="p", original=None, edited=None, meta=meta, **paths)


def test_mask_priors_are_acsf_over_the_concept_masks(tmp_path) -> None:
    from sigma_iml.training.priors import mask_intent_map

    eps = 0.01
    left, right = (0, 0, 20, 40), (10, 0, 40, 40)
    # add reads only the edited concept; remove only the original one
    add = mask_intent_map(_concept_ref(tmp_path, "add", left, right), (40, 40), eps)
    assert add[:, 30].min() == pytest.approx(1.0) and add[:, 5].max() == pytest.approx(eps)
    remove = mask_intent_map(_concept_ref(tmp_path, "remove", left, right), (40, 40), eps)
    assert remove[:, 5].min() == pytest.approx(1.0) and remove[:, 30].max() == pytest.approx(eps)
    # replace: the product, high only where both concepts are
    replace = mask_intent_map(_concept_ref(tmp_path, "replace", left, right), (40, 40), eps)
    assert replace[:, 15].min() == pytest.approx(1.0)
    assert replace[:, 5].max() == pytest.approx(eps) and replace[:, 30].max() == pytest.approx(eps)
    # Without an action field the masks present imply it; none at all: the ε map.
    implied = mask_intent_map(_concept_ref(tmp_path, None, None, right), (20, 20), eps)
    assert implied.shape == (20, 20) and implied[:, 15].min() == pytest.approx(1.0)
    empty = mask_intent_map(_concept_ref(tmp_path), (8, 8), eps)
    assert np.allclose(empty, eps)


def test_a_prior_folder_is_refused_for_another_source(tmp_path) -> None:
    from sigma_iml.training.priors import build_priors

    refs = [_concept_ref(tmp_path, "add", None, (0, 0, 10, 10))]
    store = build_priors(tmp_path / "priors", refs, {}, (16, 16), source="masks")
    assert store.get(0)[0, 0] == pytest.approx(1.0, abs=1e-3)

    def branch(pairs):  # never called: the folder is refused first
        raise AssertionError

    with pytest.raises(ConfigError, match="source"):
        build_priors(tmp_path / "priors", refs, {}, (16, 16), source="instruction", branch=branch)


def test_priors_setting_is_validated_and_defaults_to_the_branch() -> None:
    assert TrainConfig().priors == "instruction"
    assert TrainConfig(priors="masks").priors == "masks"
    with pytest.raises(ConfigError, match="priors"):
        TrainConfig(priors="mask")


def test_an_unreadable_pair_gets_the_epsilon_prior_and_the_build_goes_on(tmp_path, caplog) -> None:
    """A missing concept mask (masks) or a corrupt image (instruction) is logged with the
    pair's id; its prior is the ε map and every other pair's is built."""
    from sigma_iml.data.pair import PairRef
    from sigma_iml.training.priors import build_priors

    good = _concept_ref(tmp_path, "add", None, (0, 0, 10, 10))
    missing = PairRef(
        id="gone", original=None, edited=None, edited_concept_mask=tmp_path / "missing.png"
    )
    store = build_priors(tmp_path / "masks", [missing, good], {}, (16, 16), source="masks")
    assert np.allclose(store.get(0), 0.01, atol=1e-4)  # float16 storage
    assert store.get(1)[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert "gone" in caplog.text

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    rng = np.random.default_rng(0)
    image = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(image)
    refs = [
        PairRef(id="broken", original=image, edited=corrupt),
        PairRef(id="fine", original=image, edited=image),
    ]

    class Full:
        """An instruction branch stand-in whose intent map is 1 everywhere."""

        def __call__(self, pairs):
            from types import SimpleNamespace

            return [SimpleNamespace(intent_map=np.ones((16, 16), np.float32)) for _ in pairs]

    store = build_priors(tmp_path / "branch", refs, {}, (16, 16), branch=Full())
    assert np.allclose(store.get(0), 0.01, atol=1e-4) and np.allclose(store.get(1), 1.0, atol=1e-3)
    assert "broken" in caplog.text
