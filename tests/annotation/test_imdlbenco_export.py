"""Our IMDL-BenCo export, loaded by IMDL-BenCo's own ``JsonDataset``.

IMDL-BenCo lives in its own venv (``bash scripts/setup-imdlbenco.sh`` creates
``.venv-imdlbenco``; its pins clash with ours), so the check runs there in a subprocess
and reports every sample as JSON. Skips when that venv is absent.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from sigma_iml.annotation.runner import annotate
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.images import load_mask
from sigma_iml.methods import build_method

IMDLBENCO_PYTHON = Path(__file__).resolve().parents[2] / ".venv-imdlbenco" / "bin" / "python"
OUTPUT_SIZE = 512

# Runs inside .venv-imdlbenco. With a CPU torch, torchvision (pulled by albumentations)
# cannot load its compiled operators and fails to import in _meta_registrations; the
# dataset code uses none of them, so an empty module stands in for that one file.
_LOAD_WITH_IMDLBENCO = """
import json, sys, types
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("m"))
import numpy as np
from IMDLBenCo.datasets import JsonDataset

dataset = JsonDataset(sys.argv[1], is_padding=False, is_resizing=True, output_size=(SIZE, SIZE))
report = []
for index in range(len(dataset)):
    sample = dataset[index]
    mask = sample["mask"].numpy()
    np.save(f"{sys.argv[2]}/mask{index}.npy", mask)
    report.append({
        "name": sample["name"],
        "image_shape": list(sample["image"].shape),
        "mask_shape": list(mask.shape),
        "mask_values": sorted(float(v) for v in np.unique(mask)),
        "label": int(sample["label"]),
        "origin_shape": [int(v) for v in sample["origin_shape"]],
    })
print(json.dumps(report))
""".replace("SIZE", str(OUTPUT_SIZE))


@pytest.mark.skipif(
    not IMDLBENCO_PYTHON.exists(),
    reason="no .venv-imdlbenco (bash scripts/setup-imdlbenco.sh creates it)",
)
def test_imdlbenco_jsondataset_reads_every_exported_sample(make_dataset, tmp_path):
    manifest = make_dataset(n=3, size=(64, 40))
    run = tmp_path / "run"
    annotate(
        iter_manifest(manifest), build_method("pixdiff-otsu"), run, negatives=True, progress=False
    )
    listing = json.loads((run / "imdlbenco.json").read_text())
    assert len(listing) == 6  # 3 manipulated + 3 negatives
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    done = subprocess.run(
        [
            str(IMDLBENCO_PYTHON),
            "-c",
            _LOAD_WITH_IMDLBENCO,
            str(run / "imdlbenco.json"),
            str(arrays),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) == len(listing)
    for index, (sample, (image, mask_path)) in enumerate(zip(report, listing)):
        assert sample["name"] == Path(image).name
        assert sample["image_shape"] == [3, OUTPUT_SIZE, OUTPUT_SIZE]
        assert sample["mask_shape"] == [1, OUTPUT_SIZE, OUTPUT_SIZE]
        assert sample["origin_shape"] == [40, 64]
        assert set(sample["mask_values"]) <= {0.0, 1.0}
        theirs = np.load(arrays / f"mask{index}.npy")[0] > 0.5
        if mask_path == "Negative":
            assert sample["label"] == 0 and not theirs.any()
            continue
        ours = load_mask(mask_path)
        assert sample["label"] == 1 and ours.any()
        # IMDL-BenCo resizes masks with albumentations' Resize: nearest neighbour (OpenCV).
        expected = cv2.resize(
            ours.astype(np.uint8), (OUTPUT_SIZE, OUTPUT_SIZE), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        assert np.array_equal(theirs, expected)
