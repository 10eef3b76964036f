"""Concept grounding: text concept + image → concept map ``A`` (the paper's Eq. 7).

The paper uses LangSAM: GroundingDINO finds boxes for the concept, SAM 2.1 segments each
box, the instance masks are merged by a pixel-wise max and resized to the working
resolution, and ``A = ε + (1 − ε) · Resize(max_k m_k)``. An absent concept, or one the
detector does not find, gives the uniform map ``A = ε·1``.

Both models run through transformers (``GroundingDinoForObjectDetection``, ``Sam2Model``)
without torchvision: GroundingDINO's images go through ``GroundingDinoImageProcessorPil``
(the default processor class needs torchvision) and SAM 2's preprocessing is done here
(:func:`sam2_preprocess`: resize to the model's square input, 1024 px for the released
checkpoints, bilinear; scale to [0, 1]; ImageNet mean/std; boxes scaled by the same
factors), masks upsampled with ``F.interpolate``. Models are loaded once per process and
configuration (:func:`load_grounding_models`), and both run on whole batches.

Nothing is computed twice (docs/design.md, "Instruction branch"): :meth:`Grounder.ground`
asks each distinct (image, concept) once, batches the detector over all queries of the
call (images of one size together, so no row is padded), encodes each image once for all
its concepts and each prompt once per process (:mod:`.grounding_reuse`), and gives SAM 2
one image embedding per image for all the boxes of all its concepts. Precision follows
:mod:`sigma_iml.device` (``precision="auto"``: bf16 autocast on CUDA and AMX CPUs).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: LangSAM's defaults (the paper's grounder): detector and SAM 2.1 checkpoints.
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-base"
DEFAULT_SEGMENTER = "facebook/sam2.1-hiera-small"
#: LangSAM's thresholds: a box is kept when its best token probability exceeds
#: ``BOX_THRESHOLD``; its label is the prompt tokens above ``TEXT_THRESHOLD``.
BOX_THRESHOLD = 0.3
TEXT_THRESHOLD = 0.25
#: ε of Eq. 7. The paper's value was lost in extraction; ours (docs/design.md §Inference 5).
DEFAULT_EPSILON = 0.01

#: ImageNet statistics, SAM 2's normalisation (``IMAGENET_DEFAULT_MEAN/STD``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: SAM 2 thresholds mask logits at 0 (``mask_threshold=0.0`` in its post-processing).
SAM_MASK_THRESHOLD = 0.0


def concept_map(
    instance_masks: np.ndarray | None, size_hw: tuple[int, int], epsilon: float
) -> np.ndarray:
    """Eq. 7: ``ε + (1 − ε) · Resize(max_k m_k)`` at ``size_hw``, float32 in [ε, 1].

    ``instance_masks``: ``(K, h, w)`` in [0, 1] (binary from SAM); None or ``K == 0``
    gives the uniform ``ε`` map. Resizing is bilinear (the paper's ``Resize``).
    """
    import torch
    import torch.nn.functional as F

    height, width = size_hw
    if instance_masks is None or len(instance_masks) == 0:
        return np.full((height, width), epsilon, dtype=np.float32)
    merged = torch.from_numpy(np.asarray(instance_masks, dtype=np.float32)).amax(dim=0)
    if merged.shape != (height, width):
        merged = F.interpolate(
            merged[None, None], size=(height, width), mode="bilinear", align_corners=False
        )[0, 0]
    merged = merged.clamp(0.0, 1.0).numpy()
    return (epsilon + (1.0 - epsilon) * merged).astype(np.float32)


def sam2_preprocess(images: Sequence[np.ndarray], input_size: int):
    """SAM 2's image preprocessing: RGB uint8 ``(H, W, 3)`` → ``(B, 3, S, S)`` float32.

    What ``Sam2ImageProcessor`` documents: resize to ``{"height": S, "width": S}`` with
    bilinear resampling (no aspect-ratio padding), rescale by 1/255, normalise with the
    ImageNet mean and std. Images of a batch may differ in size.
    """
    import torch
    import torch.nn.functional as F

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    tensors = []
    for image in images:
        # A read-only array (a decoded image may be one) is copied: torch.from_numpy
        # warns about sharing memory it may not write.
        array = np.ascontiguousarray(image)
        if not array.flags.writeable:
            array = array.copy()
        tensor = torch.from_numpy(array).permute(2, 0, 1)[None].float()
        tensor = F.interpolate(
            tensor,
            size=(input_size, input_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        tensors.append(tensor / 255.0)
    return (torch.cat(tensors) - mean) / std


def sam2_scale_boxes(boxes: np.ndarray, image_hw: tuple[int, int], input_size: int) -> np.ndarray:
    """Boxes ``(K, 4)`` ``x0, y0, x1, y1`` in image pixels → the resized input's pixels
    (``Sam2Processor._normalize_coordinates``: x by S/W, y by S/H)."""
    height, width = image_hw
    scale = np.array([input_size / width, input_size / height] * 2, dtype=np.float32)
    return np.asarray(boxes, dtype=np.float32) * scale


@dataclass
class GroundingModels:
    detector: object
    detector_processor: object
    tokenizer: object
    segmenter: object
    device: object
    #: SAM 2's weight dtype (bf16 where bf16 runs, else float32).
    dtype: object
    #: The autocast dtype both models run under; None: float32.
    autocast_dtype: object = None

    @property
    def sam_input_size(self) -> int:
        size = self.segmenter.config.vision_config.backbone_config.image_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def precision(self) -> str:
        from ..device import precision_name

        return precision_name(self.autocast_dtype)


@functools.lru_cache(maxsize=2)
def load_grounding_models(
    detector: str,
    segmenter: str,
    device: str = "auto",
    local_files_only: bool = False,
    precision: str = "auto",
) -> GroundingModels:
    """GroundingDINO (model, PIL image processor, tokenizer) and SAM 2, once per process."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection, Sam2Model
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    from ..device import autocast_dtype, resolve_device, weights_dtype
    from ..hub import resolve_pretrained
    from .grounding_reuse import install_reuse

    resolved = resolve_device(device)
    compute_dtype = autocast_dtype(resolved, precision)
    detector_source, detector_local = resolve_pretrained(detector, local_files_only)
    segmenter_source, segmenter_local = resolve_pretrained(segmenter, local_files_only)
    try:
        processor = GroundingDinoImageProcessorPil.from_pretrained(
            detector_source, local_files_only=detector_local
        )
        tokenizer = AutoTokenizer.from_pretrained(detector_source, local_files_only=detector_local)
        # safetensors only: a pickled pytorch_model.bin could run code when loaded.
        detector_model = GroundingDinoForObjectDetection.from_pretrained(
            detector_source, local_files_only=detector_local, use_safetensors=True
        )
        segmenter_model = Sam2Model.from_pretrained(
            segmenter_source, local_files_only=segmenter_local, use_safetensors=True
        )
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot load the grounding models {detector!r}, {segmenter!r}: {err}"
        ) from err
    # GroundingDINO keeps float32 weights where they are precision-sensitive (box
    # regression, deformable sampling: autocast runs its matmuls in bf16 and keeps the
    # rest in float32); its image backbone (Swin) and SAM 2 take the run's dtype, bf16
    # where bf16 runs (sigma_iml.device.weights_dtype: no per-call recast of frozen
    # weights; benchmarks/README.md measures both).
    frozen_dtype = weights_dtype(resolved, precision)
    detector_model.to(resolved).eval()
    detector_model.model.backbone.to(frozen_dtype)
    install_reuse(detector_model)
    segmenter_model.to(resolved, dtype=frozen_dtype).eval()
    return GroundingModels(
        detector_model, processor, tokenizer, segmenter_model, resolved, frozen_dtype, compute_dtype
    )


def image_key(image: np.ndarray) -> tuple:
    """Identity of an image's content: shape and a digest of its bytes (an original
    shared by several pairs is one image)."""
    data = np.ascontiguousarray(image)
    return (data.shape, hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest())


def detection_prompt(concept: str) -> str:
    """GroundingDINO's prompt form: lower case, ending with a period."""
    text = " ".join(concept.lower().split()).rstrip(".")
    return text + "."


@dataclass
class Detection:
    """Boxes (``(K, 4)`` x0, y0, x1, y1 in image pixels) and their scores for one query."""

    boxes: np.ndarray
    scores: np.ndarray


class Grounder:
    """``ground(images, concepts) -> concept maps``, batched over queries (module
    docstring). ``precision``: ``auto`` | ``bf16`` | ``fp32``; ``grounder.precision``
    says which ran."""

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        segmenter: str = DEFAULT_SEGMENTER,
        *,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        epsilon: float = DEFAULT_EPSILON,
        batch_size: int = 4,
        max_instances: int = 16,
        device: str = "auto",
        local_files_only: bool = False,
        precision: str = "auto",
    ):
        from ..device import check_precision

        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError("epsilon must lie in [0, 1]")
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.detector_name, self.segmenter_name = str(detector), str(segmenter)
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.epsilon, self.batch_size, self.max_instances = epsilon, batch_size, max_instances
        self.device, self.local_files_only = device, local_files_only
        self.precision_setting = check_precision(precision)

    @property
    def models(self) -> GroundingModels:
        return load_grounding_models(
            self.detector_name,
            self.segmenter_name,
            self.device,
            self.local_files_only,
            self.precision_setting,
        )

    @property
    def precision(self) -> str:
        """``bf16`` or ``fp32``: what the detector and segmenter run in, for records."""
        return self.models.precision

    def _batches(self, images: Sequence[np.ndarray]) -> list[list[int]]:
        """Indices in batches of at most ``batch_size``, one image size per batch (a
        padded row would not give the boxes of its own call)."""
        by_size: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(tuple(image.shape), []).append(index)
        return [
            group[start : start + self.batch_size]
            for group in by_size.values()
            for start in range(0, len(group), self.batch_size)
        ]

    def detect(
        self,
        images: Sequence[np.ndarray],
        concepts: Sequence[str],
        keys: Sequence[object] | None = None,
    ) -> list[Detection]:
        """GroundingDINO boxes of ``concepts[i]`` in ``images[i]``, as
        ``post_process_grounded_object_detection`` selects them. Rows with equal
        ``keys[i]`` show the same image: it is encoded once per batch."""
        import torch

        from ..device import autocast

        models = self.models
        image_backbone = models.detector.model.backbone
        detections: list[Detection | None] = [None] * len(images)
        for chunk in self._batches(images):
            chunk_images = [images[i] for i in chunk]
            prompts = [detection_prompt(concepts[i]) for i in chunk]
            pixels = models.detector_processor(chunk_images, return_tensors="pt")
            text = models.tokenizer(prompts, padding="longest", return_tensors="pt")
            inputs = {k: v.to(models.device) for k, v in {**pixels, **text}.items()}
            image_backbone.row_keys = [keys[i] for i in chunk] if keys is not None else None
            try:
                with torch.inference_mode(), autocast(models.device, models.autocast_dtype):
                    output = models.detector(**inputs)
            finally:
                image_backbone.row_keys = None
            probs = output.logits.float().sigmoid()  # (B, Q, 256); padded text → 0
            for row, index in enumerate(chunk):
                # Padding tokens of shorter prompts must not vote.
                valid = torch.zeros_like(probs[0, 0], dtype=torch.bool)
                valid[: int(text["attention_mask"][row].sum())] = True
                row_probs = probs[row] * valid
                scores = row_probs.max(dim=-1).values
                keep = (scores > self.box_threshold) & (row_probs > self.text_threshold).any(-1)
                height, width = images[index].shape[:2]
                centre = output.pred_boxes[row].float()[keep]
                boxes = torch.stack(
                    [
                        (centre[:, 0] - centre[:, 2] / 2) * width,
                        (centre[:, 1] - centre[:, 3] / 2) * height,
                        (centre[:, 0] + centre[:, 2] / 2) * width,
                        (centre[:, 1] + centre[:, 3] / 2) * height,
                    ],
                    dim=-1,
                ).reshape(-1, 4)
                scores = scores[keep]
                order = scores.argsort(descending=True)[: self.max_instances]
                detections[index] = Detection(
                    boxes[order].cpu().numpy(), scores[order].cpu().numpy()
                )
        return [d for d in detections if d is not None]

    def segment(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """SAM 2 masks ``(K, H, W)`` bool for the boxes of each image (``K == 0`` allowed):
        one image embedding per image for all its boxes."""
        import torch
        import torch.nn.functional as F

        from ..device import autocast

        models = self.models
        size = models.sam_input_size
        masks: list[np.ndarray | None] = [None] * len(images)
        todo = [i for i, b in enumerate(boxes) if len(b)]
        for i, image in enumerate(images):
            if not len(boxes[i]):
                masks[i] = np.zeros((0, *image.shape[:2]), dtype=bool)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            pixels = sam2_preprocess([images[i] for i in chunk], size)
            count = max(len(boxes[i]) for i in chunk)
            prompt = np.zeros((len(chunk), count, 4), dtype=np.float32)
            for row, i in enumerate(chunk):
                scaled = sam2_scale_boxes(boxes[i], images[i].shape[:2], size)
                # Pad with repeats of the first box: their masks are dropped below.
                prompt[row] = np.concatenate(
                    [scaled, np.repeat(scaled[:1], count - len(scaled), 0)]
                )
            with torch.inference_mode(), autocast(models.device, models.autocast_dtype):
                output = models.segmenter(
                    pixel_values=pixels.to(models.device, models.dtype),
                    input_boxes=torch.from_numpy(prompt).to(models.device, models.dtype),
                    multimask_output=False,
                )
            logits = output.pred_masks[:, :, 0].float()  # (B, count, h, w)
            for row, i in enumerate(chunk):
                height, width = images[i].shape[:2]
                upsampled = F.interpolate(
                    logits[row : row + 1],
                    size=(height, width),
                    mode="bilinear",
                    align_corners=False,
                )[0, : len(boxes[i])]
                masks[i] = (upsampled > SAM_MASK_THRESHOLD).cpu().numpy()
        return [m for m in masks if m is not None]

    def ground(
        self,
        images: Sequence[np.ndarray],
        concepts: Sequence[str | None],
        size_hw: Sequence[tuple[int, int]] | None = None,
    ) -> list[np.ndarray]:
        """Concept maps (Eq. 7) of ``concepts[i]`` in ``images[i]`` at ``size_hw[i]``
        (default: the image's size). A None concept gives the ε map without any model.

        Each distinct (image, concept) is detected once; each distinct image is encoded
        once by the detector's image backbone per batch and once by SAM 2, for all the
        boxes of all its concepts (module docstring)."""
        sizes = list(size_hw) if size_hw is not None else [im.shape[:2] for im in images]
        maps: list[np.ndarray | None] = [None] * len(images)
        image_keys: dict[int, tuple] = {}
        query_of: dict[tuple, list[int]] = {}  # (image key, prompt) → indices asking it
        for index, concept in enumerate(concepts):
            if concept is None or not concept.strip():
                continue
            key = image_keys.setdefault(id(images[index]), image_key(images[index]))
            query_of.setdefault((key, detection_prompt(concept)), []).append(index)
        if query_of:
            # Queries of one image side by side, so its rows share a detector batch.
            image_order = {key: n for n, key in enumerate(dict.fromkeys(k for k, _ in query_of))}
            queries = sorted(query_of, key=lambda q: image_order[q[0]])
            first = {q: query_of[q][0] for q in queries}
            detections = self.detect(
                [images[first[q]] for q in queries],
                [concepts[first[q]] for q in queries],
                [q[0] for q in queries],
            )
            # SAM 2: one call per distinct image with the boxes of all its queries.
            per_image: dict[tuple, list[int]] = {}
            for number, query in enumerate(queries):
                per_image.setdefault(query[0], []).append(number)
            distinct = list(per_image)
            instance_masks = self.segment(
                [images[first[queries[per_image[k][0]]]] for k in distinct],
                [
                    np.concatenate([detections[n].boxes for n in per_image[k]]).reshape(-1, 4)
                    for k in distinct
                ],
            )
            for key, masks in zip(distinct, instance_masks):
                offset = 0
                for number in per_image[key]:
                    found = len(detections[number].boxes)
                    own = masks[offset : offset + found]
                    offset += found
                    for index in query_of[queries[number]]:
                        maps[index] = concept_map(own, sizes[index], self.epsilon)
        return [
            m if m is not None else concept_map(None, sizes[i], self.epsilon)
            for i, m in enumerate(maps)
        ]
