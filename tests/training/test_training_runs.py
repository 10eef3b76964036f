"""End-to-end pieces of a training run with tiny models: resume, checkpoint files, the
feature cache, VAE round trips, Stage II and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sigma_iml.data.synth import make_pairs
from sigma_iml.errors import ConfigError
from sigma_iml.models.checkpoint import load_checkpoint
from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
from sigma_iml.testing import write_dinov2, write_tiny_taesd, write_tiny_vae
from sigma_iml.training.config import PartnerConfig, Stage2Config, TrainConfig
from sigma_iml.training.datasets import PairTrainingSet, list_pairs
from sigma_iml.training.features import build_feature_cache
from sigma_iml.training.partners import PartnerStore, RoundTrip
from sigma_iml.training.stage1 import train_stage1
from sigma_iml.training.stage2 import train_stage2
from sigma_iml.training.trainer import build_network

SIZE = 64


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread for these tests, restored afterwards. On a machine with few
    cores shared with other jobs, OpenMP threads wait on each other: a head step measured
    0.32 s on one thread and 3.8 s on two, on two loaded cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-training")
    make_pairs(root / "pairs", 12, seed=5, noise=1.0, size=(72, 64))
    make_pairs(root / "val", 4, seed=6, noise=1.0, size=(72, 64))
    dinov2 = write_dinov2(root / "dinov2", patch_size=8, image_size=SIZE, num_hidden_layers=4)
    return {"root": root, "pairs": root / "pairs", "val": root / "val", "dinov2": dinov2}


def _config(tiny: dict[str, Path], **changes) -> TrainConfig:
    model = SigmaConfig(
        backbone=BackboneConfig(
            name_or_path=str(tiny["dinov2"]), image_size=(SIZE, SIZE), layers=(1, 3)
        ),
        head=HeadConfig(embed_dim=16, num_heads=1, fpn_dim=8, decoder_dim=8),
    )
    defaults = dict(
        model=model,
        # The uniform prior unless a test asks for priors: the default (instruction)
        # would load the paper's grounding models, which these tests do not have.
        priors="instruction" if "instruction" in changes else "none",
        epochs=2,
        batch_size=4,
        checkpoint_every=2,
        log_every=1,
        device="cpu",
        cache_dtype="float32",
    )
    return TrainConfig(**{**defaults, **changes})


class _Interrupt(Exception):
    pass


def _stop_at(step_to_stop: int):
    def callback(step: int) -> None:
        if step == step_to_stop:
            raise _Interrupt

    return callback


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "head.safetensors"))


def test_resume_after_interruption_reaches_the_same_state(tiny, tmp_path: Path) -> None:
    # 12 pairs, batch 4: 3 steps per epoch, 6 in all; micro-batches of 2 accumulate.
    config = _config(tiny, micro_batch_size=2)
    straight = train_stage1(config, tiny["pairs"], tmp_path / "straight", local_files_only=True)
    assert straight.steps == 6

    with pytest.raises(_Interrupt):  # killed at step 5; the last save was at step 4
        train_stage1(
            config, tiny["pairs"], tmp_path / "resumed", local_files_only=True, on_step=_stop_at(5)
        )
    state = json.loads((tmp_path / "resumed" / "last" / "trainer_state.json").read_text())
    assert state["progress"]["step"] == 4 and state["progress"]["epoch"] == 1
    resumed = train_stage1(config, tiny["pairs"], tmp_path / "resumed", local_files_only=True)
    assert resumed.steps == 6

    a, b = _weights(tmp_path / "straight" / "last"), _weights(tmp_path / "resumed" / "last")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    opt_a = load_file(str(tmp_path / "straight" / "last" / "optimizer.safetensors"))
    opt_b = load_file(str(tmp_path / "resumed" / "last" / "optimizer.safetensors"))
    for key in opt_a:
        assert torch.allclose(opt_a[key], opt_b[key], atol=1e-6), key
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [s["step"] for s in history["steps"]] == [1, 2, 3, 4, 5, 6]

    # A different config cannot resume that folder.
    with pytest.raises(ConfigError, match="different config"):
        train_stage1(
            _config(tiny, micro_batch_size=2, seed=1),
            tiny["pairs"],
            tmp_path / "resumed",
            local_files_only=True,
        )


def test_outputs_are_safetensors_and_json_and_load_as_checkpoints(tiny, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train_stage1(
        _config(tiny, epochs=1), tiny["pairs"], out, val=tiny["val"], local_files_only=True
    )
    assert result.best.metric == "val_f1" and result.best.step == 3
    for folder in (out / "best", out / "last"):
        for path in folder.iterdir():
            assert path.suffix in (".safetensors", ".json"), path
            if path.suffix == ".json":
                json.loads(path.read_text())
    assert sorted(p.name for p in (out / "last").iterdir()) == [
        "config.json",
        "head.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    net = load_checkpoint(out / "best", local_files_only=True)
    assert net.config.backbone.image_size == (SIZE, SIZE)
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"][-1]["val"]["resolution"] == f"{SIZE}x{SIZE}"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Nothing pickled anywhere in the run folder.
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".ckpt")]


def test_feature_cache_equals_recomputed_features(tiny, tmp_path: Path) -> None:
    config = _config(tiny)
    net = build_network(config, None, local_files_only=True)
    refs = list_pairs(tiny["pairs"], require_masks=True)
    dataset = PairTrainingSet(refs, (SIZE, SIZE), augment=None)
    cache = build_feature_cache(tmp_path / "cache", net.backbone, dataset, dtype="float32")
    indices = np.array([7, 2, 2, 11])
    cached = cache.batch(indices)
    items = [dataset[int(i)] for i in indices]
    original = torch.stack([item["original"] for item in items])
    edited = torch.stack([item["edited"] for item in items])
    recomputed_o, recomputed_e = net.features(original, edited)
    for level in range(2):
        assert torch.equal(cached["original"][level], recomputed_o[level])
        assert torch.equal(cached["edited"][level], recomputed_e[level])
    assert torch.equal(cached["mask"], torch.stack([item["mask"] for item in items]))

    # Feature-space flip mirrors the features and the mask of the flipped rows only.
    flipped = cache.batch(indices, flips=np.array([True, False, False, True]))
    assert torch.equal(flipped["original"][0][0], cached["original"][0][0].flip(-1))
    assert torch.equal(flipped["mask"][3], cached["mask"][3].flip(-1))
    assert torch.equal(flipped["edited"][1][1], cached["edited"][1][1])

    # Reopening reuses the cache; another backbone config is refused.
    again = build_feature_cache(tmp_path / "cache", net.backbone, dataset, dtype="float32")
    assert again.ids == cache.ids
    with pytest.raises(ConfigError, match="dtype"):
        build_feature_cache(tmp_path / "cache", net.backbone, dataset, dtype="float16")


def test_training_from_the_cache_runs_and_resumes_building(tiny, tmp_path: Path) -> None:
    config = _config(tiny, epochs=1)
    result = train_stage1(
        config,
        tiny["pairs"],
        tmp_path / "run",
        val=tiny["val"],
        cache_features=tmp_path / "cache",
        local_files_only=True,
    )
    assert result.steps == 3
    meta = json.loads((tmp_path / "cache" / "train" / "meta.json").read_text())
    assert meta["complete"] and meta["done"] == 12 and meta["slots"] == ["original", "edited"]
    assert (tmp_path / "cache" / "val" / "level0.npy").is_file()


@pytest.mark.parametrize("kind", ["vae", "taesd"])
def test_vae_round_trip_with_tiny_autoencoders(kind: str, tmp_path: Path) -> None:
    folder = (write_tiny_vae if kind == "vae" else write_tiny_taesd)(tmp_path / kind)
    config = PartnerConfig(kind=kind, name_or_path=str(folder), subfolder="")
    round_trip = RoundTrip(config, local_files_only=True)
    images = [
        np.random.default_rng(i).integers(0, 256, (30, 45, 3), dtype=np.uint8) for i in range(2)
    ]
    out = round_trip(images)  # 30x45 is padded to the autoencoder's multiple, then cropped
    assert [o.shape for o in out] == [(30, 45, 3)] * 2 and out[0].dtype == np.uint8
    assert np.array_equal(round_trip(images)[1], out[1])  # the latent mean: deterministic

    # The store computes each partner once and reads it back afterwards.
    store = PartnerStore(tmp_path / "partners", config, (30, 45), local_files_only=True)
    first = store.get("item/1", images[0])
    path = store.path("item/1")
    assert path.is_file() and "/" not in path.name
    mtime = path.stat().st_mtime_ns
    assert np.array_equal(store.get("item/1", images[1]), first)  # cached, not recomputed
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="partner folder"):
        PartnerStore(tmp_path / "partners", config, (32, 32), local_files_only=True)


def test_an_fp16_variant_only_vae_loads_for_the_round_trip(tmp_path: Path) -> None:
    """A VAE published as ``vae/diffusion_pytorch_model.fp16.safetensors`` only (the
    layout of SD 1.5 inpainting's components) loads, upcast to the asked dtype."""
    from diffusers import AutoencoderKL

    plain = AutoencoderKL.from_pretrained(write_tiny_vae(tmp_path / "plain"))
    plain.half().save_pretrained(tmp_path / "half" / "vae", variant="fp16")
    assert [p.name for p in (tmp_path / "half" / "vae").glob("*.safetensors")] == [
        "diffusion_pytorch_model.fp16.safetensors"
    ]
    config = PartnerConfig(kind="vae", name_or_path=str(tmp_path / "half"), subfolder="vae")
    round_trip = RoundTrip(config, local_files_only=True)
    assert round_trip.model.dtype == torch.float32
    weight = round_trip.model.state_dict()["encoder.conv_in.weight"]
    assert torch.equal(weight, plain.state_dict()["encoder.conv_in.weight"].float())
    image = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert round_trip([image])[0].shape == (24, 24, 3)


def test_stage2_runs_logs_every_term_and_keeps_the_teacher(tiny, tmp_path: Path) -> None:
    stage1 = train_stage1(
        _config(tiny, epochs=1), tiny["pairs"], tmp_path / "s1", local_files_only=True
    )
    vae = write_tiny_vae(tmp_path / "vae")
    config = _config(
        tiny,
        model=None,
        epochs=1,
        micro_batch_size=2,
        stage2=Stage2Config(
            min_qes=0.0,
            partner=PartnerConfig(kind="vae", name_or_path=str(vae), subfolder=""),
        ),
    )
    result = train_stage2(
        config,
        tiny["pairs"],
        tiny["val"],  # 4 pairs used as unlabelled: one step
        stage1.out / "last",
        tmp_path / "s2",
        local_files_only=True,
    )
    assert result.steps == 1
    entry = result.history["steps"][-1]
    for term in ("seg", "cal", "st", "dis", "confident_fraction", "qes_kept"):
        assert np.isfinite(entry[term]), term
    assert entry["loss"] == pytest.approx(
        entry["seg"] + 0.5 * entry["cal"] + 0.5 * entry["st"] + 0.1 * entry["dis"]
    )
    last = tmp_path / "s2" / "last"
    assert (last / "teacher.safetensors").is_file()
    assert len(list((tmp_path / "s2" / "partners").glob("*.png"))) == 4
    teacher = load_file(str(last / "teacher.safetensors"))
    student = _weights(last)
    start = _weights(stage1.out / "last")
    # teacher = 0.999 * start + 0.001 * student after one step
    key = next(k for k in student if not torch.equal(student[k], start[k]))
    assert torch.allclose(teacher[key], 0.999 * start[key] + 0.001 * student[key], atol=1e-6)


def test_cli_train_stage1_and_stage2(tiny, tmp_path: Path) -> None:
    from sigma_iml.cli.app import app

    if not any(group.name == "train" for group in app.registered_groups):
        from sigma_iml.cli import train as train_cli

        train_cli.register(app)  # until the app registers the group itself
    config = _config(tiny, epochs=1)
    config_path = tmp_path / "train.yaml"
    import yaml

    config_path.write_text(yaml.safe_dump(config.to_dict()))
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "train", "stage1", "--data", str(tiny["pairs"]), "--out", str(tmp_path / "s1"),
            "--config", str(config_path), "--max-steps", "2", "--val", str(tiny["val"]),
            "--cache-features", str(tmp_path / "cache"), "--offline",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and "validation at 64x64" in result.output
    stage2_yaml = tmp_path / "stage2.yaml"
    stage2_yaml.write_text(
        yaml.safe_dump(
            {
                "batch_size": 4,
                "device": "cpu",
                "priors": "none",
                "stage2": {"partner": {"kind": "resynthesis"}},
            }
        )
    )
    result = runner.invoke(
        app,
        [
            "train", "stage2", "--labeled", str(tiny["pairs"]), "--unlabeled", str(tiny["val"]),
            "--init", str(tmp_path / "s1" / "best"), "--out", str(tmp_path / "s2"),
            "--config", str(stage2_yaml), "--max-steps", "1", "--offline",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bad = runner.invoke(
        app,
        ["train", "stage1", "--data", str(tiny["pairs"]), "--out", str(tmp_path / "x"),
         "--config", str(stage2_yaml.with_name("missing.yaml"))],
    )  # fmt: skip
    message = " ".join(bad.output.split())
    assert bad.exit_code != 0 and "cannot read" in message and "No such file" in message
    assert "missing.yaml" in message


class _OracleBranch:
    """Stands in for the instruction branch: the intent map is the pair's true mask."""

    def __init__(self, refs_by_id):
        self.refs_by_id = refs_by_id
        self.calls = 0

    def __call__(self, pairs):
        from types import SimpleNamespace

        from sigma_iml.data.pair import load_pair

        self.calls += 1
        return [
            SimpleNamespace(intent_map=load_pair(self.refs_by_id[p.id]).mask.astype(np.float32))
            for p in pairs
        ]


def test_instruction_priors_follow_the_augmentation_and_reach_training(tiny, tmp_path) -> None:
    from sigma_iml.training.config import AugmentConfig
    from sigma_iml.training.priors import build_priors

    refs = list_pairs(tiny["pairs"], require_masks=True)
    branch = _OracleBranch({ref.id: ref for ref in refs})
    store = build_priors(
        tmp_path / "priors", refs, {"parser": "rules"}, (SIZE, SIZE), branch=branch
    )
    assert store.priors.shape == (12, SIZE, SIZE)
    dataset = PairTrainingSet(
        refs,
        (SIZE, SIZE),
        augment=AugmentConfig(hflip_probability=0.5, crop_scale=(0.6, 1.0)),
        priors=store,
    )
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            agreement = ((item["prior"] > 0.5) == (item["mask"] > 0.5)).float().mean()
            assert agreement > 0.9, (epoch, index, float(agreement))
    # Built once: a second build with the same signature reuses the folder.
    calls = branch.calls
    build_priors(tmp_path / "priors", refs, {"parser": "rules"}, (SIZE, SIZE), branch=branch)
    assert branch.calls == calls

    config = _config(tiny, epochs=1, instruction={"parser": "rules", "grounding": False})
    result = train_stage1(
        config,
        tiny["pairs"],
        tmp_path / "run",
        cache_features=tmp_path / "cache",
        local_files_only=True,
        instruction_branch=branch,
    )
    assert result.steps == 3
    # Kept beside the feature cache: another run on that cache reuses them.
    assert json.loads((tmp_path / "cache" / "priors" / "train" / "meta.json").read_text())[
        "complete"
    ]
    with pytest.raises(ConfigError, match="unknown instruction settings"):
        _config(tiny, instruction={"parsr": "rules"})


def test_priors_from_the_real_branch_without_grounding_are_the_epsilon_map(tiny, tmp_path) -> None:
    from sigma_iml.training.priors import build_priors

    refs = list_pairs(tiny["val"], require_masks=True)
    store = build_priors(
        tmp_path / "priors",
        refs,
        {"parser": "rules", "grounding": False, "epsilon": 0.01},
        (SIZE, SIZE),
    )
    values = store.batch(range(len(refs)))
    assert values.shape == (4, 1, SIZE, SIZE)
    assert values.max() <= 0.0101 and values.min() >= 0.0


def test_stage2_resumes_with_its_teacher(tiny, tmp_path: Path) -> None:
    stage1 = train_stage1(
        _config(tiny, epochs=1), tiny["pairs"], tmp_path / "s1", local_files_only=True
    )
    config = _config(
        tiny,
        model=None,
        epochs=3,  # 4 unlabelled pairs, batch 4: one step per epoch
        checkpoint_every=1000,  # saves only at epoch ends
        stage2=Stage2Config(ema_momentum=0.5, partner=PartnerConfig(kind="resynthesis")),
    )

    def run(out: Path, **kwargs):
        return train_stage2(
            config,
            tiny["pairs"],
            tiny["val"],
            stage1.out / "last",
            out,
            partners=tmp_path / "partners",
            local_files_only=True,
            **kwargs,
        )

    straight = run(tmp_path / "straight")
    with pytest.raises(_Interrupt):
        run(tmp_path / "resumed", on_step=_stop_at(2))  # killed before epoch 1's save
    state = json.loads((tmp_path / "resumed" / "last" / "trainer_state.json").read_text())
    assert state["progress"]["step"] == 1
    resumed = run(tmp_path / "resumed")
    assert straight.steps == resumed.steps == 3
    for name in ("head.safetensors", "teacher.safetensors", "optimizer.safetensors"):
        a = load_file(str(tmp_path / "straight" / "last" / name))
        b = load_file(str(tmp_path / "resumed" / "last" / name))
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (name, key)


@pytest.mark.parametrize(
    ("failing", "saved"),
    # Saved at the end of epoch 0: 3 steps when an unlabelled batch failed, else 4.
    [("unlabeled", 3), ("labeled", 4)],
)
def test_stage2_resumed_after_a_failed_batch_draws_the_same_labelled_batches(
    failing: str, saved: int, tiny, tmp_path: Path, monkeypatch
) -> None:
    """A batch whose every pair fails takes no step but still draws a labelled batch, so
    the labelled stream runs ahead of the step count; a resumed run must continue it
    where it stood (issue 10), not at the step count."""
    import shutil

    from sigma_iml.training.stage2 import StageTwo

    stage1 = train_stage1(
        _config(tiny, epochs=1, max_steps=1), tiny["pairs"], tmp_path / "s1", local_files_only=True
    )
    # Batches of one pair: 4 labelled and 4 unlabelled batches per epoch.
    labeled, unlabeled = tmp_path / "labeled", tmp_path / "unlabeled"
    shutil.copytree(tiny["val"], labeled)
    shutil.copytree(tiny["val"], unlabeled)
    config = _config(
        tiny,
        model=None,
        epochs=2,
        batch_size=1,
        checkpoint_every=1000,  # saves only at epoch ends
        stage2=Stage2Config(ema_momentum=0.5, partner=PartnerConfig(kind="resynthesis")),
    )
    partners = tmp_path / "partners"  # made before the pair is broken
    PartnerStore(partners, config.stage2.partner, (SIZE, SIZE)).build(
        list_pairs(unlabeled, require_masks=False)
    )
    broken = (labeled if failing == "labeled" else unlabeled) / "edited" / "synth_000001.png"
    broken.write_bytes(b"not a png")

    drawn: list[int | None] = []
    real_step = StageTwo.step

    def recording_step(self, batch):
        labeled_batch = batch[0]
        drawn.append(None if labeled_batch is None else int(labeled_batch["index"][0]))
        return real_step(self, batch)

    monkeypatch.setattr(StageTwo, "step", recording_step)

    def run(out: Path, **kwargs):
        return train_stage2(
            config,
            labeled,
            unlabeled,
            stage1.out / "last",
            out,
            partners=partners,
            local_files_only=True,
            **kwargs,
        )

    straight = run(tmp_path / "straight")
    uninterrupted = list(drawn)
    drawn.clear()
    with pytest.raises(_Interrupt):  # killed in epoch 1, after epoch 0's failed batch
        run(tmp_path / "resumed", on_step=_stop_at(saved + 1))
    del drawn[saved:]  # the step killed before its save is drawn again on resume
    state = json.loads((tmp_path / "resumed" / "last" / "trainer_state.json").read_text())
    progress = state["progress"]
    assert (progress["step"], progress["labeled"]) == (saved, 4)
    if failing == "unlabeled":
        assert progress["labeled"] > progress["step"]  # the stream ran ahead of the steps
        assert None not in uninterrupted
    else:
        assert None in uninterrupted  # the failed labelled batch was drawn (no L_seg)
    resumed = run(tmp_path / "resumed")
    assert resumed.steps == straight.steps == 8
    assert drawn == uninterrupted
    for name in ("head.safetensors", "teacher.safetensors", "optimizer.safetensors"):
        a = load_file(str(tmp_path / "straight" / "last" / name))
        b = load_file(str(tmp_path / "resumed" / "last" / name))
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (name, key)


def test_checkpoints_carry_the_instruction_settings_of_their_init(tiny, tmp_path: Path) -> None:
    """A model trained from a checkpoint with an instruction.json (as tiny-weights writes)
    keeps running with those instruction models: its checkpoints carry the settings with
    absolute paths, and the relative backbone name of the init is made absolute too."""
    from sigma_iml.models.checkpoint import instruction_settings, save_checkpoint

    init_net = load_checkpoint_from_config(tiny)
    (tmp_path / "models" / "qwen2").mkdir(parents=True)
    init = save_checkpoint(
        init_net.sigma_head,
        init_net.config,
        tmp_path / "models" / "sigma",
        instruction={"parser": "rules", "parser_model": "../qwen2", "grounding": False},
    )
    out = tmp_path / "run"
    train_stage1(
        _config(tiny, epochs=1, max_steps=1), tiny["pairs"], out, init=init, local_files_only=True
    )
    for folder in (out / "best", out / "last"):
        settings = instruction_settings(folder)
        assert settings == {
            "parser": "rules",
            "parser_model": str((tmp_path / "models" / "qwen2").resolve()),
            "grounding": False,
        }
    # A config's instruction section changes only the settings it names.
    changed = _config(tiny, epochs=1, max_steps=1, instruction={"parser": "none"}, priors="none")
    train_stage1(changed, tiny["pairs"], tmp_path / "run2", init=init, local_files_only=True)
    assert instruction_settings(tmp_path / "run2" / "best") == {
        "parser": "none",
        "parser_model": str((tmp_path / "models" / "qwen2").resolve()),
        "grounding": False,
    }


def load_checkpoint_from_config(tiny: dict[str, Path]):
    from sigma_iml.models.sigma import SigmaNet

    return SigmaNet.from_config(_config(tiny).model, local_files_only=True)


def test_training_where_no_pair_loads_stops_with_an_error(tiny, tmp_path: Path) -> None:
    """Every image corrupt: an epoch without one usable batch is an error naming the
    problem, not an endless loop at step 0 (issue 13)."""
    import shutil

    from sigma_iml.errors import DataError

    broken = tmp_path / "broken"
    shutil.copytree(tiny["pairs"], broken)
    for image in (broken / "edited").iterdir():
        image.write_bytes(b"not an image")
    with pytest.raises(DataError, match="none of its .* batches could be loaded"):
        train_stage1(_config(tiny, epochs=50), broken, tmp_path / "out", local_files_only=True)


def test_a_diverging_loss_stops_before_a_nan_checkpoint(tiny, tmp_path: Path, monkeypatch) -> None:
    from sigma_iml.training.stage1 import StageOne

    real_step = StageOne.step

    def nan_step(self, batch):
        terms = real_step(self, batch)
        return {**terms, "loss": float("nan")}

    monkeypatch.setattr(StageOne, "step", nan_step)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="training loss is nan"):
        train_stage1(_config(tiny, epochs=1), tiny["pairs"], out, local_files_only=True)
    assert not (out / "best").exists()


# YAML reads `.nan` and `.inf` as these floats; "nan" is the string a CLI override gives.
@pytest.mark.parametrize("lr", [float("nan"), float("inf"), "nan", 0.0])
def test_a_non_finite_or_zero_learning_rate_is_refused(lr) -> None:
    with pytest.raises(ConfigError, match="optimizer.lr must be a finite positive number"):
        TrainConfig.from_dict({"optimizer": {"lr": lr}})


def test_stage1_on_all_empty_masks_warns(tiny, tmp_path: Path, caplog) -> None:
    """Masks that are all empty make Stage I learn to predict nothing: say so (issue 13)."""
    import logging
    import shutil

    import numpy as np
    from PIL import Image

    empty = tmp_path / "empty"
    shutil.copytree(tiny["pairs"], empty)
    for mask in (empty / "mask").iterdir():
        size = Image.open(mask).size
        Image.fromarray(np.zeros(size[::-1], dtype=np.uint8)).save(mask)
    with caplog.at_level(logging.WARNING, logger="sigma_iml.training.stage1"):
        train_stage1(_config(tiny, epochs=1), empty, tmp_path / "out", local_files_only=True)
    assert "every mask of the first 3 steps is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sigma_iml.training.stage1"):
        train_stage1(_config(tiny, epochs=1), tiny["pairs"], tmp_path / "ok", local_files_only=True)
    assert "is empty" not in caplog.text


def test_stage2_without_any_loadable_labelled_pair_stops(tiny, tmp_path: Path) -> None:
    """Stage II must not train on without L_seg when no labelled pair loads (issue 13)."""
    import shutil

    from sigma_iml.errors import DataError

    stage1 = train_stage1(
        _config(tiny, epochs=1, max_steps=1), tiny["pairs"], tmp_path / "s1", local_files_only=True
    )
    labeled = tmp_path / "labeled"
    shutil.copytree(tiny["val"], labeled)
    for image in (labeled / "edited").iterdir():
        image.write_bytes(b"broken")
    config = _config(
        tiny,
        model=None,
        epochs=1,
        batch_size=2,
        stage2=Stage2Config(partner=PartnerConfig(kind="resynthesis")),
    )
    with pytest.raises(DataError, match="no labelled batch loaded over a whole pass"):
        train_stage2(
            config,
            labeled,
            tiny["val"],
            stage1.out / "best",
            tmp_path / "s2",
            local_files_only=True,
        )
