"""SIGMA training (paper §3.3): Stage I on pairs with exact masks, Stage II domain
adaptation. Entry points: :func:`sigma_iml.training.stage1.train_stage1` and
:func:`sigma_iml.training.stage2.train_stage2` (``sigma-iml train stage1|stage2``).

Modules: ``trainer`` (the one loop: steps, resume, ``last/`` and ``best/``, validation),
``stage1`` and ``stage2`` (each stage's batches and step), ``config`` (YAML training
config), ``sources`` (batches from images or cached features), ``transforms``
(synchronized augmentation), ``datasets`` (training sets, deterministic order),
``losses`` (L_seg, L_cal, L_st, L_dis), ``features`` (cached backbone features),
``priors`` (cached instruction priors), ``partners`` (VAE / TAESD round trips), ``ema``
(the teacher), ``schedule`` (warm-up + cosine), ``state`` (progress and resumable state,
safetensors + JSON), ``history`` (history.json and curves.png). Tiny test autoencoders:
``sigma_iml.testing``. Speed measurements: ``benchmarks/training.py``. See docs/training.md.
"""
