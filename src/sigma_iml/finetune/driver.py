"""Fine-tune one IMDL-BenCo model with IMDL-BenCo's own training loop and evaluators.

This file runs inside IMDL-BenCo's venv (``.venv-imdlbenco``), never in ours: it imports
only the standard library, numpy, torch and IMDL-BenCo, and no ``sigma_iml`` module, so
that IMDL-BenCo's pins and ours never meet (docs/finetune.md). :mod:`.runner` starts it as

    .venv-imdlbenco/bin/python driver.py JOB.json

``JOB.json`` says what to train (the keys of :data:`JOB_KEYS`). The driver reads our
``imdlbenco`` export with IMDL-BenCo's ``JsonDataset`` as it is, scores the model on each
test list with IMDL-BenCo's ``test_one_epoch`` and ``PixelF1``/``PixelIOU`` before
training, trains with IMDL-BenCo's ``train_one_epoch`` (its AdamW, its cosine schedule
with warm-up, its loss scaler), scores again after every epoch, and writes:

- ``OUT/checkpoint-<epoch>.pth`` — IMDL-BenCo's own checkpoint (``misc.save_model``:
  ``{"model", "optimizer", "epoch", "scaler", "args"}``), so IMDL-BenCo's ``test.py``
  loads it as it loads its own;
- ``OUT/metrics.json`` — ``{"before": {test: {f1, iou}}, "epochs": [{epoch, train_loss,
  lr, seconds, test: {test: {f1, iou}}}], "checkpoint": ..., ...}``; written after every
  epoch, so a run stopped early keeps what it measured.

The data augmentation is the one IMDL-BenCo's ``train.py`` ships (``augment: true``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
import types
from pathlib import Path

#: What a job file holds (every key is required; :mod:`.runner` writes them all).
JOB_KEYS = (
    "model",  # an IMDL-BenCo MODELS name, e.g. "PSCC_Net"
    "model_args",  # constructor arguments of that class
    "train",  # path of an IMDL-BenCo JsonDataset list (our imdlbenco.json)
    "tests",  # {name: path of a JsonDataset list}
    "out",  # folder for metrics.json and the checkpoint
    "epochs",
    "device",  # "cpu", "cuda", "cuda:1", ...
    "image_size",
    "resize",  # true: is_resizing, false: is_padding (IMDL-BenCo's two layouts)
    "edge_mask_width",  # null or pixels, for models trained with an edge loss
    "batch_size",
    "test_batch_size",
    "lr",
    "min_lr",
    "warmup_epochs",
    "weight_decay",
    "accum_iter",
    "seed",
    "augment",
    "predict_label",  # IMDL-BenCo's --if_predict_label
    "no_model_eval",  # IMDL-BenCo's --no_model_eval (MVSS-Net's recipe)
    "init_checkpoint",  # null, or weights to start from (IMDL-BenCo checkpoint or state dict)
    "num_workers",
    "threads",  # torch CPU threads, or null
)


def _import_imdlbenco() -> None:
    """Import torchvision, standing in an empty module for its ``_meta_registrations``
    only when a CPU torch cannot load torchvision's compiled operators (scripts/
    setup-imdlbenco.sh explains why); IMDL-BenCo's training code uses none of them."""
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - any failure of the compiled part, then retry once
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations"
        )
        importlib.import_module("torchvision")
    importlib.import_module("IMDLBenCo.model_zoo")  # registers every model


def _training_args(job: dict, device: str) -> argparse.Namespace:
    """The ``args`` namespace IMDL-BenCo's trainer, tester, optimizer factory and
    checkpoint writer read, filled from the job as IMDL-BenCo's ``train.py`` fills it."""
    epochs = int(job["epochs"])
    # IMDL-BenCo's cosine schedule divides by (epochs - warmup_epochs): keep one epoch
    # out of the warm-up.
    warmup = max(0, min(int(job["warmup_epochs"]), epochs - 1))
    on_cuda = device.startswith("cuda")
    return argparse.Namespace(
        model=job["model"],
        epochs=epochs,
        start_epoch=0,
        lr=float(job["lr"]),
        min_lr=float(job["min_lr"]),
        warmup_epochs=warmup,
        weight_decay=float(job["weight_decay"]),
        accum_iter=int(job["accum_iter"]),
        batch_size=int(job["batch_size"]),
        test_batch_size=int(job["test_batch_size"]),
        image_size=int(job["image_size"]),
        if_resizing=bool(job["resize"]),
        if_padding=not bool(job["resize"]),
        edge_mask_width=job["edge_mask_width"],
        if_predict_label=bool(job["predict_label"]),
        no_model_eval=bool(job["no_model_eval"]),
        # AMP in IMDL-BenCo is torch.cuda.amp: on the CPU it is off.
        if_not_amp=not on_cuda,
        distributed=False,
        output_dir=str(job["out"]),
        log_dir=None,
        device=device,
        seed=int(job["seed"]),
        opt="AdamW",
        betas=(0.9, 0.999),
        momentum=0.9,
        resume="",
    )


def _build_model(job: dict, args: argparse.Namespace):
    from IMDLBenCo.registry import MODELS

    model_class = MODELS.get(job["model"])
    init = model_class if inspect.isfunction(model_class) else model_class.__init__
    accepted = inspect.signature(init).parameters
    # As IMDL-BenCo's train.py: training flags the constructor names are passed too.
    kwargs = {k: v for k, v in vars(args).items() if k in accepted}
    kwargs.update(job["model_args"] or {})
    return model_class(**kwargs)


def _load_initial_weights(model, path: str) -> None:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model.load_state_dict(state)


def _datasets(job: dict, args: argparse.Namespace):
    import albumentations as albu
    from IMDLBenCo.datasets import JsonDataset
    from IMDLBenCo.registry import POSTFUNCS
    from IMDLBenCo.transforms import RandomCopyMove, RandomInpainting

    try:
        post_function = POSTFUNCS.get_lower(f"{args.model.lower()}_post_func")
    except Exception:  # noqa: BLE001 - IMDL-BenCo raises a bare Exception: no post function
        post_function = None
    # IMDL-BenCo train.py's augmentation, unchanged.
    train_transform = (
        albu.Compose(
            [
                albu.RandomScale(scale_limit=0.2, p=1),
                RandomCopyMove(p=0.1),
                RandomInpainting(p=0.1),
                albu.HorizontalFlip(p=0.5),
                albu.VerticalFlip(p=0.5),
                albu.RandomBrightnessContrast(
                    brightness_limit=(-0.1, 0.1), contrast_limit=0.1, p=1
                ),
                albu.ImageCompression(quality_lower=70, quality_upper=100, p=0.2),
                albu.RandomRotate90(p=0.5),
                albu.GaussianBlur(blur_limit=(3, 7), p=0.2),
            ]
        )
        if job["augment"]
        else None
    )
    common = {
        "is_padding": args.if_padding,
        "is_resizing": args.if_resizing,
        "output_size": (args.image_size, args.image_size),
        "edge_width": args.edge_mask_width,
        "post_funcs": post_function,
    }
    train = JsonDataset(str(job["train"]), common_transforms=train_transform, **common)
    tests = {
        name: JsonDataset(str(path), common_transforms=albu.Compose([]), **common)
        for name, path in job["tests"].items()
    }
    return train, tests


def _loaders(job: dict, args: argparse.Namespace, train, tests):
    import torch

    generator = torch.Generator().manual_seed(args.seed)
    train_loader = torch.utils.data.DataLoader(
        train,
        sampler=torch.utils.data.RandomSampler(train, generator=generator),
        batch_size=min(args.batch_size, len(train)),
        num_workers=int(job["num_workers"]),
        drop_last=True,
    )
    # Every test image is scored once, in order (IMDL-BenCo's tester takes a short last
    # batch as it comes).
    test_loaders = {
        name: torch.utils.data.DataLoader(
            dataset,
            sampler=torch.utils.data.SequentialSampler(dataset),
            batch_size=args.test_batch_size,
            num_workers=int(job["num_workers"]),
            drop_last=False,
        )
        for name, dataset in tests.items()
    }
    return train_loader, test_loaders


def _evaluate(model, test_loaders, device, epoch: int, args) -> dict:
    from IMDLBenCo.evaluation import PixelF1, PixelIOU
    from IMDLBenCo.training_scripts.tester import test_one_epoch

    scores = {}
    for name, loader in test_loaders.items():
        evaluators = [PixelF1(threshold=0.5, mode="origin"), PixelIOU(threshold=0.5)]
        stats = test_one_epoch(
            model,
            data_loader=loader,
            evaluator_list=evaluators,
            device=device,
            epoch=epoch,
            name=name,
            log_writer=None,
            args=args,
            is_test=True,
        )
        scores[name] = {
            "f1": float(stats[evaluators[0].name]),
            "iou": float(stats[evaluators[1].name]),
            "n": len(loader.dataset),
        }
    return scores


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def run(job: dict) -> dict:
    missing = [key for key in JOB_KEYS if key not in job]
    if missing:
        raise SystemExit(f"job file lacks {', '.join(missing)}")
    _import_imdlbenco()
    import IMDLBenCo.training_scripts.utils.misc as misc
    import numpy as np
    import torch
    from IMDLBenCo.training_scripts.trainer import train_one_epoch

    device = str(job["device"])
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"device {device} asked for, but this torch sees no CUDA device")
    if not torch.cuda.is_available():
        # IMDL-BenCo's trainer calls torch.cuda.synchronize() around every step; with no
        # CUDA device there is nothing to wait for.
        torch.cuda.synchronize = lambda *a, **k: None
    if job["threads"]:
        torch.set_num_threads(int(job["threads"]))
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    args = _training_args(job, device)
    misc.seed_torch(args.seed)
    np.random.seed(args.seed)

    train, tests = _datasets(job, args)
    train_loader, test_loaders = _loaders(job, args, train, tests)
    model = _build_model(job, args)
    if job["init_checkpoint"]:
        _load_initial_weights(model, str(job["init_checkpoint"]))
    model.to(torch.device(device))
    import timm.optim.optim_factory as optim_factory

    optimizer = optim_factory.create_optimizer(args, model)
    loss_scaler = misc.NativeScalerWithGradNormCount()

    metrics: dict = {
        "model": job["model"],
        "model_args": job["model_args"],
        "device": device,
        "image_size": args.image_size,
        "layout": "resize" if args.if_resizing else "pad",
        "train": str(job["train"]),
        "n_train": len(train),
        "tests": {name: str(path) for name, path in job["tests"].items()},
        "init_checkpoint": job["init_checkpoint"],
        "settings": {
            k: getattr(args, k)
            for k in (
                "epochs",
                "lr",
                "min_lr",
                "warmup_epochs",
                "weight_decay",
                "batch_size",
                "accum_iter",
                "seed",
                "edge_mask_width",
                "if_predict_label",
            )
        },
        "metric": "IMDL-BenCo PixelF1 / PixelIOU (threshold 0.5, mean over images)",
        "before": None,
        "epochs": [],
        "checkpoint": None,
    }
    started = time.perf_counter()
    metrics["before"] = _evaluate(model, test_loaders, device, -1, args)
    metrics["before_seconds"] = round(time.perf_counter() - started, 3)
    _write_json(out / "metrics.json", metrics)
    for epoch in range(args.epochs):
        started = time.perf_counter()
        stats = train_one_epoch(
            model,
            train_loader,
            optimizer,
            device,
            epoch,
            loss_scaler,
            log_writer=None,
            log_per_epoch_count=1,
            args=args,
        )
        optimizer.zero_grad()
        train_seconds = time.perf_counter() - started
        scores = _evaluate(model, test_loaders, device, epoch, args)
        if epoch + 1 == args.epochs:
            misc.save_model(
                args=args,
                model=model,
                model_without_ddp=model,
                optimizer=optimizer,
                loss_scaler=loss_scaler,
                epoch=epoch,
            )
            metrics["checkpoint"] = str(out / f"checkpoint-{epoch}.pth")
        metrics["epochs"].append(
            {
                "epoch": epoch,
                "train_loss": {k: float(v) for k, v in stats.items() if k != "lr"},
                "mean_lr": float(stats.get("lr", 0.0)),
                "train_seconds": round(train_seconds, 3),
                "test": scores,
            }
        )
        _write_json(out / "metrics.json", metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: driver.py JOB.json")
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    run(job)


if __name__ == "__main__":
    main()
