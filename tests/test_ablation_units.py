"""Ablation library without training: grid, names, overrides, summary, plots,
skip logic, the shipped study files and one-line errors of ablate.py."""

import ast
import json
import math
import sys
from pathlib import Path

import pytest
from mock_cli import run_in_process

import bidense
from bidense.ablation import grid, plots, results, runner
from bidense.ablation.study import Study, StudyError, load_study

REPO = Path(__file__).resolve().parent.parent
STUDIES = sorted((REPO / "configs" / "studies").glob("*.py"))

STUDY = Study(
    name="s",
    model="binary_resnet_e18",
    dataset="fashion_mnist",
    grid={"scaling": ["none", "xnor"], "downsample": ["fp", "binary"]},
    reference={"scaling": "none", "downsample": "fp"},
    seeds=(1, 2),
    config={"epochs": 1, "model.filters": (8, 8, 16, 16)},
)


def test_imports_go_one_way_from_the_grid_to_the_study():
    """study.py defines what grid, runner, results and plots build on; it imports
    none of them (no cycle, at module level or inside a function)."""
    tree = ast.parse((REPO / "bidense" / "ablation" / "study.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not [name for name in imported if name and name.startswith("bidense")]


def test_grid_expands_in_order_with_distinct_names_and_overrides(tmp_path):
    cells = grid.expand(STUDY)
    assert [c.name for c in cells] == [
        "scaling-none_downsample-fp", "scaling-none_downsample-binary",
        "scaling-xnor_downsample-fp", "scaling-xnor_downsample-binary",
    ]  # fmt: skip
    assert grid.reference_cell(STUDY, cells) is cells[0]
    runs = grid.runs(STUDY, cells, tmp_path)
    assert [r.seed for r in runs] == [1] * 4 + [2] * 4  # every cell once first
    assert runs[5].workdir == tmp_path / "cells" / cells[1].name / "seed2"
    assert grid.overrides(STUDY, cells[3], 7) == [
        ("epochs", "1"), ("model.filters", "[8,8,16,16]"),
        ("model.scaling", "xnor"), ("model.downsample", "binary"), ("seed", "7"),
    ]  # fmt: skip
    assert grid.format_value((1,)) == "[1]"  # "(1)" would parse as the number 1
    assert grid.format_value(None) == "none" and grid.format_value(True) == "true"


def test_overrides_leave_out_recipe_values():
    """train.py reads "none" as None, so the recipe's own values are not passed."""
    recipe = runner.recipe_dict(REPO / "configs", "binary_resnet_e18", "fashion_mnist")
    assert recipe["model"]["scaling"] == "none"
    none_cell, xnor_cell = grid.expand(STUDY)[0], grid.expand(STUDY)[2]
    keys = [k for k, _ in grid.overrides(STUDY, none_cell, 1, recipe)]
    assert keys == ["epochs", "model.filters", "seed"]  # scaling=none, ds=fp: recipe
    assert ("model.scaling", "xnor") in grid.overrides(STUDY, xnor_cell, 1, recipe)
    xnor_base = STUDY.replace(config={"model.scaling": "xnor"})
    cell = grid.Cell({}, {"scaling": "none"}, "binary_resnet_e18")
    with pytest.raises(StudyError, match="reads 'none' as None"):
        grid.overrides(xnor_base, cell, 1, recipe)


def test_coupled_axes_and_conflicts():
    coupled = STUDY.replace(
        grid={"shape": {"a/k8": {"blocks": (1,), "growth_rate": 8}, "b": {}}},
        reference={"shape": "a/k8"},
    )
    cells = grid.expand(coupled)
    assert cells[0].name == "shape-a+k8"
    assert cells[0].settings == {"blocks": (1,), "growth_rate": 8}
    clash = STUDY.replace(
        grid={"a": {"x": {"scaling": "xnor"}}, "b": {"y": {"scaling": "none"}}},
        reference={"a": "x", "b": "y"},
    )
    with pytest.raises(StudyError, match="two axes set 'scaling' differently"):
        grid.expand(clash)


def test_grid_keys_name_switches_recipe_keys_or_dotted_keys():
    """A plain key is a model switch, unless it is one of the recipe's own
    top-level settings (``precision``, ``epochs``); dotted keys are recipe keys."""
    recipes = STUDY.replace(
        grid={
            "ingredient": {
                "bf16": {"precision": "mixed_bfloat16", "epochs": 3},
                "kd": {"distill.teacher": "runs/t", "scaling": "xnor"},
            }
        },
        reference={"ingredient": "bf16"},
    )
    bf16, kd = grid.expand(recipes)
    assert grid.overrides(recipes, bf16, 1)[-3:-1] == [
        ("precision", "mixed_bfloat16"),
        ("epochs", "3"),
    ]
    assert grid.overrides(recipes, kd, 1)[-3:-1] == [
        ("distill.teacher", "runs/t"),
        ("model.scaling", "xnor"),
    ]


def write_study(tmp_path, body):
    path = tmp_path / "study.py"
    path.write_text("from bidense.ablation import Study\n" + body)
    return path


def test_load_study_reports_bad_files_in_one_line(tmp_path):
    with pytest.raises(StudyError, match="no study file"):
        load_study(tmp_path / "missing.py")
    with pytest.raises(StudyError, match="defines no VARIANTS"):
        load_study(write_study(tmp_path, "X = 1\n"))
    with pytest.raises(StudyError, match="cannot load .* NameError"):
        load_study(write_study(tmp_path, "VARIANTS = {'a': nope}\n"))
    body = (
        "VARIANTS = {'a': Study(name='s', model='binary_resnet_e18', "
        "dataset='mnist', grid={'scaling': ['none']}, reference={'scaling': %r})}\n"
    )
    assert load_study(write_study(tmp_path, body % "none"))[1] == "a"
    with pytest.raises(StudyError, match="has no variant 'b'; choose one of: a"):
        load_study(write_study(tmp_path, body % "none"), "b")
    with pytest.raises(StudyError, match="reference scaling='xnor' is not a level"):
        load_study(write_study(tmp_path, body % "xnor"))


def fake_rows(top1):
    """results.collect-style rows: ``top1`` maps cell name to per-seed test top-1
    values (validation top-1 is 2 points above)."""
    cells = {c.name: c for c in grid.expand(STUDY)}
    return [
        {"cell": name, **cells[name].labels, "seed": seed, "val_top1": acc + 0.02,
         "top1": acc, "top5": 0.99, "size_mib": 0.1 + 0.01 * i, "ops": 1e6}
        for i, (name, accs) in enumerate(top1.items())
        for seed, acc in enumerate(accs, 1)
    ]  # fmt: skip


def test_summary_means_stds_and_differences_to_the_reference(tmp_path):
    names = [c.name for c in grid.expand(STUDY)]
    rows = fake_rows({names[0]: [0.80, 0.84], names[2]: [0.70, 0.72], names[3]: [0.9]})
    table = results.summarize(STUDY, grid.expand(STUDY), rows)
    assert [r["cell"] for r in table] == [names[0], names[2], names[3]]  # no runs: out
    ref, xnor, single = table
    assert ref["reference"] and ref["d_top1"] == 0.0
    assert xnor["top1_mean"] == pytest.approx(0.71)
    assert xnor["top1_std"] == pytest.approx(math.sqrt(2 * 0.01**2))
    assert xnor["d_top1"] == pytest.approx(-0.11)
    assert xnor["d_top1_se"] == pytest.approx(math.sqrt(0.0002 / 2 + 0.0008 / 2))
    assert math.isnan(single["top1_std"]) and math.isnan(single["d_top1_se"])
    text = results.write_summary(STUDY, table, tmp_path)
    assert xnor["val_top1_mean"] == pytest.approx(0.73)
    assert "| xnor | fp | 2 | 73.00 | 71.00 | 1.41 |" in text and "| -11.00 |" in text
    assert (tmp_path / "summary.csv").read_text().count("\n") == 4

    paths = plots.draw_all(STUDY, table, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "accuracy_vs_size.png", "bar_downsample.png", "bar_scaling.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_main_effects_average_paired_differences_over_the_other_axes():
    """The paper's claims are main effects: 'scaling does not help', whatever the
    downsampling. Each effect pairs cells that differ only in that axis."""
    none_fp, none_bin, xnor_fp, xnor_bin = (c.name for c in grid.expand(STUDY))
    rows = fake_rows(
        {
            none_fp: [0.80, 0.82],  # means 0.81 / 0.77 / 0.79 / 0.71,
            none_bin: [0.76, 0.78],  # each with a seed variance of 0.0002
            xnor_fp: [0.78, 0.80],
            xnor_bin: [0.70, 0.72],
        }
    )
    table = results.summarize(STUDY, grid.expand(STUDY), rows)
    scaling, downsample = results.main_effects(STUDY, table)
    assert (scaling["axis"], scaling["level"], scaling["reference"]) == (
        "scaling", "xnor", "none",
    )  # fmt: skip
    assert scaling["pairs"] == 2
    assert scaling["d_top1"] == pytest.approx(((0.79 - 0.81) + (0.71 - 0.77)) / 2)
    # sqrt(2 pairs x 0.0002 x (1/2 + 1/2)) / 2 pairs
    assert scaling["d_top1_se"] == pytest.approx(0.01)
    assert downsample["d_top1"] == pytest.approx(((0.77 - 0.81) + (0.71 - 0.79)) / 2)
    assert "| scaling | xnor vs none | 2 | -4.00 | 1.00 |" in results.markdown(
        STUDY, table
    )


def test_one_axis_has_no_main_effects_table():
    one_axis = STUDY.replace(
        grid={"scaling": ["none", "xnor"]}, reference={"scaling": "none"}
    )
    cells = grid.expand(one_axis)
    rows = [
        {"cell": cell.name, **cell.labels, "seed": seed, "top1": acc, "top5": 0.99,
         "size_mib": 0.1, "ops": 1e6}
        for cell, accs in zip(cells, ([0.8, 0.81], [0.7, 0.72]), strict=True)
        for seed, acc in enumerate(accs, 1)
    ]  # fmt: skip
    table = results.summarize(one_axis, cells, rows)
    assert results.main_effects(one_axis, table) == []
    assert "Main effects" not in results.markdown(one_axis, table)


def test_finished_runs_are_skipped_and_failures_reported(tmp_path):
    cells = grid.expand(STUDY)
    runs = grid.runs(STUDY, cells, tmp_path)[:3]
    for run in runs[:2]:  # finished, and interrupted (config but no summary)
        run.workdir.mkdir(parents=True)
        (run.workdir / "config.json").write_text("{}")
    (runs[0].workdir / "summary.json").write_text("{}")
    assert [runner.state(r) for r in runs] == ["done", "interrupted", "new"]
    failing = [sys.executable, "-c", "import sys; print('x: error: boom'); exit(3)"]
    lines = []
    outcomes = runner.run_all(
        STUDY, runs, launcher=failing, train_script=REPO / "train.py",
        echo=lines.append,
    )  # fmt: skip
    assert [o.status for o in outcomes] == ["skipped", "failed", "failed"]
    assert outcomes[1].message == "x: error: boom"
    assert "resuming" in lines[1] and "starting" in lines[3]
    assert len(json.loads((runs[1].workdir / "ablate.json").read_text())["sessions"])


def test_thread_env_splits_the_cores(monkeypatch):
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert runner.thread_env(1) == {}
    assert runner.thread_env(2)["TF_NUM_INTRAOP_THREADS"] == "2"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_shipped_studies_load_and_resolve(path):
    """Every variant resolves against the recipes; reduced ones use >= 2 seeds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("s", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "python ablate.py --study configs/studies/" in module.__doc__
    assert "fashion_mnist" in module.VARIANTS and module.DEFAULT == "fashion_mnist"
    assert set(module.VARIANTS) - {"fashion_mnist"} <= {"cifar10", "imagenet2012"}
    assert len(module.VARIANTS) >= 2  # a full variant for GPU users
    for variant in module.VARIANTS:
        study, _ = load_study(path, variant)
        runner.check_cells(study, grid.expand(study), REPO / "configs", build=False)
        if variant == "fashion_mnist":
            assert len(study.seeds) >= 2


def reduced_sizes(path):
    study, _ = load_study(path, "fashion_mnist")
    from bidense.training import config as config_lib
    from bidense.training import modeling

    sizes = {}
    for cell in grid.expand(study):
        cfg = config_lib.load_recipe(REPO / "configs", cell.model, study.dataset)
        config_lib.apply_overrides(cfg, grid.overrides(study, cell, 1))
        kwargs = modeling.model_kwargs(cfg)
        kwargs.pop("weights")
        model = bidense.create_model(
            cell.model, input_shape=(28, 28, 1), num_classes=10, **kwargs
        )
        sizes[cell.name] = bidense.model_stats(model)["size_mib"]
    return sizes


@pytest.mark.parametrize(
    "stem, tolerance",
    [("densenet_growth_vs_blocks", 0.5), ("densenet_vs_resnet_e", 0.2)],
)
def test_reduced_studies_compare_models_of_about_equal_size(stem, tolerance):
    sizes = reduced_sizes(REPO / "configs" / "studies" / f"{stem}.py")
    assert max(sizes.values()) <= (1 + tolerance) * min(sizes.values()), sizes


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "no study file"),
        ("grid={'scalling': ['none']}, reference={'scalling': 'none'}",
         "binary_resnet_e18 has no switch 'scalling'"),
        ("grid={'filters': ['wide']}, reference={'filters': 'wide'}",
         "config.model.filters must be a list of numbers"),
        ("grid={'scaling': ['median']}, reference={'scaling': 'median'}",
         "scaling"),
    ],
)  # fmt: skip
def test_ablate_bad_input_is_a_one_line_error(tmp_path, body, message):
    path = tmp_path / "missing.py"
    if body is not None:
        path = write_study(
            tmp_path,
            "VARIANTS = {'a': Study(name='s', model='binary_resnet_e18', "
            f"dataset='fashion_mnist', {body})}}\n",
        )
    result = run_in_process(
        "ablate.py", "--study", path, "--workdir", tmp_path / "w", mock=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("ablate.py: error: ") and message in lines[-1], lines
    assert not (tmp_path / "w").exists()  # nothing trained, nothing written
