"""SIGMA training (paper §3.3): Stage I on pairs with exact masks, Stage II domain
adaptation. Entry points: :func:`sigma_iml.training.stage1.train_stage1` and
:func:`sigma_iml.training.stage2.train_stage2` (``sigma-iml train stage1|stage2``).

Modules: ``config`` (YAML training config), ``transforms`` (synchronized augmentation),
``datasets`` (training sets, deterministic order), ``losses`` (L_seg, L_cal, L_st,
L_dis), ``features`` (cached backbone features), ``priors`` (cached instruction priors),
``partners`` (VAE / TAESD round trips), ``ema`` (the teacher), ``schedule`` (warm-up +
cosine), ``state`` (resumable state, safetensors + JSON), ``loop`` (sources, validation,
history), ``curves`` (PNG plots), ``tiny`` (tiny autoencoders), ``benchmark`` (timings).
See docs/training.md.
"""
