"""Inference with a SIGMA checkpoint: pairs in, masks and probability maps out.

The public one-pair API (README, "Python API")::

    annotator = Annotator.from_pretrained("runs/stage2/best")  # or "sigma:checkpoint=...,parser=rules"
    result = annotator(original, edited, "replace the cat with a dog")  # PIL, arrays or paths
    result.mask, result.probability, result.parsed_instruction

``from_pretrained`` attaches the checkpoint's instruction branch (parse → ground → ACSF),
so the instruction shapes the prior the network sees; ``from_checkpoint`` builds the bare
network, which takes priors from the caller and refuses instructions it cannot use.

Device and precision are chosen per :class:`Annotator` at run time by
:mod:`sigma_iml.device`: ``precision="auto"`` is bfloat16 autocast on a GPU or a CPU with
bf16 matrix units, float32 elsewhere (a CPU without them runs bf16 slower than float32;
docs/design.md, "Device and precision"). Everything happens inside local contexts
(``torch.inference_mode``, ``torch.autocast``): no global torch state is changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import ImageSource, load_image
from ..data.pair import Pair, resize_rgb
from ..device import autocast, autocast_dtype, precision_name, resolve_device
from ..errors import ConfigError
from ..methods import MASK_THRESHOLD
from ..models.backbone import backbone_in_dtype
from ..models.sigma import SigmaNet, SigmaOutput

#: A pair as the annotator accepts it: a decoded :class:`Pair`, or
#: ``(original, edited)`` / ``(original, edited, instruction)`` with each image a path,
#: encoded bytes, PIL image or array.
PairInput = Pair | tuple


@dataclass
class Annotation:
    """The annotator's answer for one pair; every map is at the edited image's size."""

    #: ``(H, W)`` bool: probability > threshold.
    mask: np.ndarray
    #: ``(H, W)`` float32 in [0, 1].
    probability: np.ndarray
    #: On request: ``difference/block{i}`` (cosine distance of backbone block i),
    #: ``visual_evidence``, ``consensus`` (per-position L2 norms over channels) and
    #: ``instruction_prior`` (the prior as pooled to the token grid; absent when the
    #: model has no instruction branch), all ``(H, W)`` float32, bilinearly resized
    #: from the token grid.
    intermediates: dict[str, np.ndarray] = field(default_factory=dict)
    id: str | None = None
    #: Seconds of this pair's share of its batch: ``backbone`` (``SigmaNet.features``)
    #: and ``head`` (``SigmaNet.head``, decoder included).
    timings: dict[str, float] = field(default_factory=dict)
    #: The parsed ``(c_o, c_e, action)`` as a dict, when the instruction branch ran.
    parsed_instruction: dict[str, Any] | None = None


class Annotator:
    """Runs a :class:`SigmaNet` over pairs, ``batch_size`` pairs per forward."""

    def __init__(
        self,
        net: SigmaNet,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 4,
        threshold: float = MASK_THRESHOLD,
        precision: str = "auto",
        compile: bool = False,
    ):
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.device = resolve_device(device)
        #: The autocast dtype (None: plain float32), from ``precision`` on this device.
        self.autocast_dtype = autocast_dtype(self.device, precision)
        self.net = net.to(self.device).eval()
        #: The frozen backbone this annotator runs: ``net.backbone``, or under bf16 a copy
        #: with bf16 weights (``backbone_in_dtype``: autocast would recast the frozen
        #: weights at every call); ``net`` itself is left as it was given.
        self.backbone = backbone_in_dtype(self.net.backbone, self.autocast_dtype)
        if compile:
            # torch.compile of the backbone and the head, in place (their weights and
            # state-dict keys unchanged). benchmarks/README.md: -14% per pair at 518 on a
            # CPU after a ~2 min first call, so it pays for bulk runs, not for one pair.
            self.backbone.compile()
            self.net.sigma_head.compile()
        self.batch_size = batch_size
        self.threshold = threshold
        self.config = net.config
        #: The instruction branch (:class:`~sigma_iml.instruction.branch.InstructionBranch`)
        #: that turns instructions into priors; None for a bare network.
        self.branch: Any = None

    @property
    def precision_name(self) -> str:
        """What runs: ``bf16`` or ``fp32`` (``precision="auto"`` resolved)."""
        return precision_name(self.autocast_dtype)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 4,
        threshold: float = MASK_THRESHOLD,
        precision: str = "auto",
        local_files_only: bool = False,
        compile: bool = False,
    ) -> Annotator:
        from ..models.checkpoint import load_checkpoint

        net = load_checkpoint(checkpoint, local_files_only=local_files_only)
        # This net is the annotator's alone: its backbone takes the run's dtype in place
        # rather than as a copy beside the float32 weights (~170 MB less for DINOv2-B).
        backbone_in_dtype(
            net.backbone, autocast_dtype(resolve_device(device), precision), in_place=True
        )
        return cls(
            net,
            device=device,
            batch_size=batch_size,
            threshold=threshold,
            precision=precision,
            compile=compile,
        )

    @classmethod
    def from_pretrained(cls, checkpoint_or_spec: str | Path, **settings: Any) -> Annotator:
        """The whole SIGMA pipeline from a checkpoint folder or a ``sigma:`` method spec
        (``"sigma:checkpoint=runs/best,parser=rules"``): the network plus the instruction
        branch its ``instruction.json`` names. ``settings`` are the ``sigma`` method's
        parameters (``device``, ``precision``, ``batch_size``, ``parser``, ...)."""
        from ..methods import build_method

        text = str(checkpoint_or_spec)
        if text.startswith("sigma:"):
            method = build_method(text, **settings)
        else:
            method = build_method("sigma", checkpoint=Path(text), **settings)
        # The registry builds the sigma method by name (inference.method wraps this module;
        # importing it here would make a cycle).
        if not isinstance(getattr(method, "annotator", None), Annotator):
            raise ConfigError(f"{text!r} is not a SIGMA checkpoint or a sigma: spec")
        annotator = method.annotator
        annotator.branch = method.branch
        return annotator

    def __call__(
        self,
        original: ImageSource,
        edited: ImageSource,
        instruction: str | None = None,
        *,
        intermediates: bool = False,
    ) -> Annotation:
        """One pair: images as paths, bytes, PIL images or arrays; the mask and maps come
        at the edited image's size."""
        return self.annotate([(original, edited, instruction)], intermediates=intermediates)[0]

    # -- inputs ---------------------------------------------------------------------------

    @staticmethod
    def _as_pair(item: PairInput, index: int) -> Pair:
        """A decoded :class:`Pair` (images given as paths, bytes, PIL images or arrays)."""
        if isinstance(item, Pair):
            return item
        if isinstance(item, tuple) and len(item) in (2, 3):
            instruction = item[2] if len(item) == 3 else None
            if instruction is not None and not isinstance(instruction, str):
                raise TypeError(f"pair {index}: the instruction is text, got {type(instruction)}")
            return Pair(
                id=str(index),
                original=load_image(item[0]),
                edited=load_image(item[1]),
                instruction=instruction,
            )
        raise TypeError(
            "a pair is a sigma_iml Pair or a tuple (original, edited[, instruction]), got "
            f"{type(item).__name__}"
        )

    def _images_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        height, width = self.config.backbone.image_size
        # Bilinear, antialiased when shrinking (Pillow), as docs/design.md step 1 says.
        resized = np.stack([resize_rgb(image, (width, height)) for image in images])
        tensor = torch.from_numpy(resized).to(self.device).permute(0, 3, 1, 2)
        return tensor.float().div_(255.0)

    def _prior_tensor(self, priors: Sequence[np.ndarray | None], count: int) -> torch.Tensor | None:
        if not self.config.head.use_instruction or all(p is None for p in priors):
            return None  # the model's own uniform ε map
        grid = tuple(s // self.net.backbone.patch_size for s in self.config.backbone.image_size)
        maps = []
        for prior in priors:
            if prior is None:
                maps.append(torch.full((1, 1, *grid), self.config.head.prior_epsilon))
                continue
            array = np.asarray(prior, dtype=np.float32)
            if array.ndim != 2:
                raise ValueError(f"a prior map is (H, W), got shape {array.shape}")
            if array.size and (array.min() < 0.0 or array.max() > 1.0):
                raise ValueError("prior maps hold values in [0, 1]")
            maps.append(F.adaptive_avg_pool2d(torch.from_numpy(array)[None, None], grid))
        if len(maps) != count:
            raise ValueError(f"{len(maps)} priors for {count} pairs")
        return torch.cat(maps).to(self.device)

    # -- running --------------------------------------------------------------------------

    def _synchronize(self) -> None:
        # CUDA kernels run asynchronously: without this a stage's clock stops before its
        # kernels have finished and the time shows up in the next stage.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _forward(
        self, original: torch.Tensor, edited: torch.Tensor, prior: torch.Tensor | None
    ) -> tuple[SigmaOutput, dict[str, float]]:
        """``SigmaNet.forward`` in its two parts, timed: the output and the seconds of
        ``backbone`` and ``head`` for the whole batch."""
        with torch.inference_mode(), autocast(self.device, self.autocast_dtype):
            self._synchronize()
            start = time.perf_counter()
            features_original, features_edited = self.net.features(original, edited, self.backbone)
            self._synchronize()
            backbone_end = time.perf_counter()
            output = self.net.head(
                features_original, features_edited, prior, tuple(original.shape[-2:])
            )
            self._synchronize()
            head_end = time.perf_counter()
        return output, {"backbone": backbone_end - start, "head": head_end - backbone_end}

    def annotate(
        self,
        pairs: Iterable[PairInput],
        *,
        priors: Sequence[np.ndarray | None] | None = None,
        intermediates: bool = False,
    ) -> list[Annotation]:
        """Annotate ``pairs`` in batches. ``priors``: one instruction prior per pair,
        ``(H, W)`` in [0, 1] at any size, or None for the uniform ε map."""
        items = [self._as_pair(item, index) for index, item in enumerate(pairs)]
        prior_list = list(priors) if priors is not None else [None] * len(items)
        if len(prior_list) != len(items):
            raise ValueError(f"{len(prior_list)} priors for {len(items)} pairs")
        # With priors given the caller has used the instructions (the sigma method does).
        instructed = [
            i for i, pair in enumerate(items) if pair.instruction is not None and priors is None
        ]
        if instructed and self.branch is None:
            raise ConfigError(
                "this annotator has no instruction branch, so an instruction would be ignored: "
                "build it with Annotator.from_pretrained(CHECKPOINT), or pass priors="
            )
        parsed: list[dict[str, Any] | None] = [None] * len(items)
        if instructed:
            # The branch's prior replaces the uniform one (docs/design.md, step 5).
            for index, result in zip(instructed, self.branch([items[i] for i in instructed])):
                prior_list[index] = result.intent_map
                parsed[index] = result.edit.to_dict()
        results: list[Annotation] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            results.extend(
                self._annotate_batch(
                    chunk, prior_list[start : start + self.batch_size], intermediates
                )
            )
        for annotation, tuple_ in zip(results, parsed):
            annotation.parsed_instruction = tuple_
        return results

    def annotate_one(
        self,
        original: ImageSource,
        edited: ImageSource,
        *,
        prior: np.ndarray | None = None,
        intermediates: bool = False,
    ) -> Annotation:
        return self.annotate([(original, edited)], priors=[prior], intermediates=intermediates)[0]

    def _annotate_batch(
        self, chunk: list[Pair], priors: list[np.ndarray | None], intermediates: bool
    ) -> list[Annotation]:
        output, batch_timings = self._forward(
            self._images_tensor([pair.original for pair in chunk]),
            self._images_tensor([pair.edited for pair in chunk]),
            self._prior_tensor(priors, len(chunk)),
        )
        share = {stage: seconds / len(chunk) for stage, seconds in batch_timings.items()}
        results = []
        for index, pair in enumerate(chunk):
            size = (int(pair.edited.shape[0]), int(pair.edited.shape[1]))
            # Resize logits, then squash: smoother than resizing probabilities.
            logits = F.interpolate(
                output.logits[index : index + 1].float(),
                size=size,
                mode="bilinear",
                align_corners=False,
            )
            probability = torch.sigmoid(logits)[0, 0].cpu().numpy().astype(np.float32)
            maps = self._intermediates(output, index, size) if intermediates else {}
            results.append(
                Annotation(
                    mask=probability > self.threshold,
                    probability=probability,
                    intermediates=maps,
                    id=pair.id,
                    timings=dict(share),
                )
            )
        return results

    def _intermediates(
        self, output: SigmaOutput, index: int, size: tuple[int, int]
    ) -> dict[str, np.ndarray]:
        def at_size(grid_map: torch.Tensor) -> np.ndarray:
            resized = F.interpolate(
                grid_map[None, None].float(), size=size, mode="bilinear", align_corners=False
            )
            return resized[0, 0].cpu().numpy().astype(np.float32)

        maps: dict[str, np.ndarray] = {}
        for level, block in enumerate(self.config.backbone.layers):
            maps[f"difference/block{block}"] = at_size(output.difference_maps[index, level])
        maps["visual_evidence"] = at_size(output.visual_evidence[index].float().norm(dim=0))
        maps["consensus"] = at_size(output.consensus[index].float().norm(dim=0))
        if output.instruction_prior is not None:
            maps["instruction_prior"] = at_size(output.instruction_prior[index, 0])
        return maps
