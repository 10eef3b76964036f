"""Tiny parser and grounding models, built once per test session (a few seconds)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_instruction_models(tmp_path_factory):
    """``{"qwen2": Path, "grounding-dino": Path, "sam2": Path}``."""
    from sigma_iml.testing import write_tiny_instruction_models

    return write_tiny_instruction_models(tmp_path_factory.mktemp("tiny-instruction"))
