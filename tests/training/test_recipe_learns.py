"""The quick CPU recipe learns (issue 11): the commands ``configs/train/tiny-cpu.yaml``
documents (and ``scripts/demo.sh`` runs), run as written with seeds of their own, give a
Stage I SIGMA that beats pixel differencing at its best fixed threshold by at least 0.05
F1 on held-out generated pairs, and a Stage II that stays within 0.02 of it.

The commands are read from the config's header, so the test runs what users are told to
run: only the seeds change (a recipe tuned to its own seeds would not be done) and the
evaluation adds a grid of ``pixdiff-fixed`` thresholds. Everything is tiny and random
(``sigma-iml dev tiny-weights``): this proves the training path learns, not SIGMA's
accuracy. The scores are printed (``pytest -s``) and written to ``recipe.json``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sigma_iml.cli.app import app

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "train" / "tiny-cpu.yaml"
#: Seeds of the training, held-out and unlabelled sets: none of them was used to choose
#: the recipe's settings (those were tried on seeds 0-3 and 21-22).
SEEDS = {"pairs": 101, "held": 102, "edits": 103}
TAUS = (0.05, 0.1, 0.15, 0.2, 0.3)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on few cores shared with other jobs, OpenMP threads wait on
    each other (a head step measured 0.32 s on one thread and 3.8 s on two, loaded)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def documented_commands(path: Path = RECIPE) -> list[list[str]]:
    """The ``sigma-iml`` commands of the config's header comment, continuation lines
    joined, as argument lists without the program name."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = re.sub(r"\\\s*\n\s*", " ", "\n".join(lines))
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("sigma-iml ")]


def _seeded(args: list[str]) -> list[str]:
    if args[0] != "make-pairs":
        return args
    out = args[args.index("--out") + 1]
    seed = args.index("--seed") + 1
    return [*args[:seed], str(SEEDS[out]), *args[seed + 1 :]]


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)


def test_the_documented_recipe_beats_pixdiff_and_stage2_keeps_it(tmp_path, monkeypatch) -> None:
    commands = documented_commands()
    assert [c[0] for c in commands] == [
        "dev", "make-pairs", "make-pairs", "train", "evaluate", "make-pairs", "train",
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    configs = RECIPE.parent
    for args in commands:
        if args[0] == "evaluate":
            continue  # scored below, with a grid of thresholds
        # The recipe names its configs relative to the repository root.
        args = [str(configs / Path(a).name) if a.startswith("configs/") else a for a in args]
        _run(_seeded(args))

    stage1 = "sigma:checkpoint=runs/tiny/best"
    stage2 = "sigma:checkpoint=runs/tiny2/best"
    pixdiff = [f"pixdiff-fixed:tau={tau}" for tau in TAUS]
    methods = [item for spec in (stage1, stage2, *pixdiff) for item in ("-m", spec)]
    _run(["evaluate", "--data", "held", *methods, "--json", "scores.json"])
    rows = json.loads(Path("scores.json").read_text())["results"]
    f1 = {row["method_spec"]: row["f1"] for row in rows}
    best_pixdiff = max(f1[spec] for spec in pixdiff)
    report = {"seeds": SEEDS, "f1": f1, "best_pixdiff": best_pixdiff}
    (tmp_path / "recipe.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    assert f1[stage1] >= best_pixdiff + 0.05, report
    assert f1[stage2] >= f1[stage1] - 0.02, report
