"""Work directories: atomic writes, refusing a different run, --restart."""

import json

import pytest

from bidense.training import config as config_lib
from bidense.training import workdir as wd


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "x.json"
    wd.atomic_write_text(path, "old")
    wd.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_same_config_resumes_other_config_is_refused(tmp_path):
    run = tmp_path / "run"
    assert (
        wd.check_or_init(run, {"epochs": 2, "model": {"binary": True}}, False, True)
        is False
    )
    (run / wd.CHECKPOINTS).mkdir()
    assert (
        wd.check_or_init(run, {"epochs": 2, "model": {"binary": True}}, False, True)
        is True
    )
    with pytest.raises(
        config_lib.ConfigError, match=r"model.binary: true -> false.*--restart"
    ):
        wd.check_or_init(run, {"epochs": 2, "model": {"binary": False}}, False, True)
    # Verbosity and checkpoint frequency do not change the run: accepted.
    changed = {"epochs": 2, "model": {"binary": True}, "verbose": 2}
    assert wd.check_or_init(run, changed, False, True) is True


def test_deterministic_is_part_of_the_run_and_old_configs_still_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # A config.json from before config.deterministic existed was trained without.
    (run / wd.CONFIG).write_text(json.dumps({"epochs": 2}))
    wd.check_or_init(run, {"epochs": 2, "deterministic": False}, False, False)
    with pytest.raises(config_lib.ConfigError, match="deterministic: false -> true"):
        wd.check_or_init(run, {"epochs": 2, "deterministic": True}, False, False)
    wd.check_or_init(run, {"epochs": 2, "deterministic": True}, True, True)
    with pytest.raises(config_lib.ConfigError, match="deterministic: true -> false"):
        wd.check_or_init(run, {"epochs": 2, "deterministic": False}, False, False)


def test_restart_removes_only_bidense_artifacts(tmp_path):
    run = tmp_path / "run"
    wd.check_or_init(run, {"epochs": 1}, False, True)
    (run / wd.CHECKPOINTS).mkdir()
    (run / wd.CSV_LOG).write_text("epoch\n0\n")
    (run / "notes.txt").write_text("mine")
    assert wd.check_or_init(run, {"epochs": 9}, True, True) is False
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "notes.txt"]
    assert json.loads((run / wd.CONFIG).read_text()) == {"epochs": 9}


def test_a_file_is_not_a_workdir(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(config_lib.ConfigError, match="not a directory"):
        wd.check_or_init(tmp_path / "f", {}, False, True)
