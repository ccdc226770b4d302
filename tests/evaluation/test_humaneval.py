"""HumanEval-Infilling: the loader, the subset, and pass@1 through the sandbox."""

import pytest

from dg_lsp.evaluation import humaneval

from ._data import require_humaneval_data

# Skips without the shared data, fails when CI is set (see _data.py).
needs_data = pytest.mark.usefixtures("humaneval_data")


@needs_data
@pytest.mark.parametrize("name", list(humaneval.SETS))
def test_each_set_loads_with_its_count_and_fields(name):
    tasks = humaneval.load_tasks(name)
    assert len(tasks) == humaneval.SETS[name][1]
    assert len({t.task_id for t in tasks}) == len(tasks)
    for task in tasks[:50]:
        assert task.task_id and task.entry_point and task.test
        assert "def check(" in task.test
        assert task.entry_point in task.prompt + task.suffix


@needs_data
def test_tasks_an_empty_line_passes_are_found():
    tasks = humaneval.load_tasks("single-line")
    chosen = [tasks[0], *(t for t in tasks if t.task_id == "SingleLineInfilling/HumanEval/105/L6")]
    # HumanEval/105's line 6 is a dictionary's entry for 6, which its tests never look up.
    assert humaneval.passing_empty(chosen, progress=False) == {"SingleLineInfilling/HumanEval/105/L6"}


@needs_data
def test_canonical_solutions_pass_and_wrong_completions_fail():
    tasks = humaneval.load_tasks("single-line")[:5]
    middles = {t.prompt + "\0" + t.suffix: t.canonical_solution for t in tasks}
    results = humaneval.evaluate(tasks, lambda prefix, suffix: middles[prefix + "\0" + suffix], progress=False)
    assert results.n == 5 and results.passed == 5 and results.pass_at_1 == 1.0
    assert [o.task_id for o in results.outcomes] == [t.task_id for t in tasks]

    wrong = humaneval.evaluate(tasks[:2], lambda prefix, suffix: "    return None\n", progress=False)
    assert wrong.passed == 0 and wrong.pass_at_1 == 0.0
    assert all(o.status in ("failed", "error") for o in wrong.outcomes)
    assert humaneval.evaluate(tasks[:1], lambda p, s: "    return (\n", progress=False).outcomes[0].status == "error"


def test_a_missing_data_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="HumanEval-Infilling data not found"):
        humaneval.load_tasks("single-line", tmp_path)
    with pytest.raises(ValueError, match="unknown"):
        humaneval.load_tasks("nope", tmp_path)


def test_the_data_folder_sits_beside_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv(humaneval.DATA_ENV, raising=False)
    assert humaneval.default_data_dir(tmp_path / "repo") == tmp_path / "shared" / "data" / "humaneval-infilling"
    monkeypatch.setenv(humaneval.DATA_ENV, str(tmp_path / "elsewhere"))
    assert humaneval.default_data_dir() == tmp_path / "elsewhere"


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception),
                                         ("false", pytest.skip.Exception)])
def test_missing_data_skips_only_outside_ci(tmp_path, monkeypatch, ci, outcome):
    monkeypatch.setenv(humaneval.DATA_ENV, str(tmp_path))  # an empty folder
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="HumanEval-Infilling data is not at"):
        require_humaneval_data()
    for file, _ in humaneval.SETS.values():
        (tmp_path / file).write_bytes(b"")
    assert require_humaneval_data() == tmp_path


def test_subsets_are_deterministic():
    items = list(range(100))
    assert humaneval.subset(items, 5) == [0, 1, 2, 3, 4]
    sample = humaneval.subset(items, 10, seed=3)
    assert sample == humaneval.subset(items, 10, seed=3) == sorted(sample) and len(set(sample)) == 10
    assert sample != humaneval.subset(items, 10, seed=4)
    assert humaneval.subset(items, None) == items == humaneval.subset(items, 500, seed=1)
