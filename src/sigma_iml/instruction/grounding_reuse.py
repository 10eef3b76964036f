"""Work GroundingDINO need not repeat: text features per prompt, image features per image.

transformers' ``GroundingDinoModel.forward`` takes token ids and pixels only: it builds
the text masks from the ids and calls ``self.text_backbone`` (BERT) and ``self.backbone``
(Swin + position codes) itself, with no argument for precomputed features. So reuse is
done by replacing those two submodules with wrappers that answer the same calls:

- :class:`CachedTextBackbone` keeps BERT's output per prompt row (its ids, masks and
  position ids: a row's output depends on nothing else), so a concept seen before costs
  no text encoding. BERT over a few tokens is small next to Swin over an 800-px image;
  the cache saves little time, but nothing is computed twice.
- :class:`SharedImageBackbone` runs the image backbone once per distinct image of a batch
  when the grounder has said which rows show the same image (``row_keys``), so an image
  queried for several concepts is encoded once. The text-conditioned layers after it
  (feature enhancer, decoder) do depend on the prompt and run per row: merging several
  concepts into one prompt ("cat. dog.") would change every box (queries are selected
  over all prompt tokens), which the per-concept maps of Eq. 7 must not.

Both are exact: each row gets the very tensors a separate call would compute.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

#: Prompt rows whose BERT output is kept (each a few KB).
TEXT_CACHE_ROWS = 4096


class CachedTextBackbone(nn.Module):
    """BERT with a per-row output cache; ``calls``/``rows_encoded`` count the work done."""

    def __init__(self, inner: nn.Module, max_rows: int = TEXT_CACHE_ROWS):
        super().__init__()
        self.inner = inner
        self.max_rows = max_rows
        self.cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.calls = self.rows_encoded = 0

    def _key(self, input_ids, attention_mask, token_type_ids, position_ids, row: int) -> tuple:
        dtype = torch.get_autocast_dtype(input_ids.device.type)
        autocast_on = torch.is_autocast_enabled(input_ids.device.type)
        return (
            tuple(input_ids[row].tolist()),
            attention_mask[row].cpu().numpy().tobytes(),
            tuple(token_type_ids[row].tolist()),
            tuple(position_ids[row].tolist()),
            str(dtype) if autocast_on else "fp32",
        )

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids, return_dict=True):
        from transformers.modeling_outputs import BaseModelOutput

        self.calls += 1
        keys = [
            self._key(input_ids, attention_mask, token_type_ids, position_ids, row)
            for row in range(input_ids.shape[0])
        ]
        missing = [row for row, key in enumerate(keys) if key not in self.cache]
        # Distinct missing rows only: the same prompt twice in a batch is encoded once.
        first: dict[tuple, int] = {}
        for row in missing:
            first.setdefault(keys[row], row)
        if first:
            rows = torch.tensor(list(first.values()), device=input_ids.device)
            output = self.inner(
                input_ids[rows],
                attention_mask[rows],
                token_type_ids[rows],
                position_ids[rows],
                return_dict=True,
            ).last_hidden_state
            self.rows_encoded += len(first)
            for index, key in enumerate(first):
                self.cache[key] = output[index].detach()
                if len(self.cache) > self.max_rows:
                    self.cache.popitem(last=False)
        hidden = torch.stack([self.cache[key] for key in keys])
        for key in keys:
            self.cache.move_to_end(key)
        if return_dict:
            return BaseModelOutput(last_hidden_state=hidden)
        return (hidden,)


class SharedImageBackbone(nn.Module):
    """The image backbone, run once per distinct ``row_keys`` entry of the batch."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        # GroundingDinoModel.forward reads ``self.backbone.position_embedding`` directly.
        self.position_embedding = inner.position_embedding
        self.row_keys: Sequence[object] | None = None
        self.calls = self.images_encoded = 0

    def forward(self, pixel_values, pixel_mask):
        self.calls += 1
        keys = self.row_keys
        if keys is None or len(keys) != pixel_values.shape[0] or len(set(keys)) == len(keys):
            self.images_encoded += pixel_values.shape[0]
            return self.inner(pixel_values, pixel_mask)
        distinct = list(dict.fromkeys(keys))
        firsts = torch.tensor([list(keys).index(k) for k in distinct], device=pixel_values.device)
        expand = torch.tensor([distinct.index(k) for k in keys], device=pixel_values.device)
        features, positions = self.inner(pixel_values[firsts], pixel_mask[firsts])
        self.images_encoded += len(distinct)
        features = [(source[expand], mask[expand]) for source, mask in features]
        positions = [position[expand] for position in positions]
        return features, positions


def install_reuse(detector: nn.Module) -> tuple[CachedTextBackbone, SharedImageBackbone]:
    """Wrap ``detector``'s text and image backbones (once); returns the wrappers."""
    model = detector.model
    if not isinstance(model.text_backbone, CachedTextBackbone):
        model.text_backbone = CachedTextBackbone(model.text_backbone)
    if not isinstance(model.backbone, SharedImageBackbone):
        model.backbone = SharedImageBackbone(model.backbone)
    return model.text_backbone, model.backbone
