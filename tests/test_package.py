"""The package root's public names: resolved lazily, so ``import sigma_iml`` is cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sigma_iml


def test_import_sigma_iml_loads_neither_numpy_nor_torch():
    code = (
        "import sys, sigma_iml; "
        "print(sorted(m for m in ('numpy', 'torch', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_names_are_the_modules_own():
    from sigma_iml.data.pair import load_pair
    from sigma_iml.data.readers import open_dataset
    from sigma_iml.inference.annotator import Annotator
    from sigma_iml.methods import build_method, method_names

    assert sigma_iml.Annotator is Annotator
    assert sigma_iml.build_method is build_method and sigma_iml.method_names is method_names
    assert sigma_iml.open_dataset is open_dataset and sigma_iml.load_pair is load_pair
    assert isinstance(sigma_iml.__version__, str) and sigma_iml.__version__
    assert set(sigma_iml.__all__) <= set(dir(sigma_iml))
    with pytest.raises(AttributeError, match="no attribute 'Annotater'"):
        sigma_iml.Annotater  # noqa: B018
