"""SweepDirectory: every path of a sweep's directory, its jobs in job order."""

from pathlib import Path

from trainer.run.layout import SweepDirectory


def test_a_sweep_lists_its_numbered_job_directories_in_job_order(tmp_path: Path):
    for name in ("10", "2", "0", ".hydra", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "3").write_text("a file, not a job")
    sweep = SweepDirectory(tmp_path)
    assert sweep.job_dirs() == [tmp_path / "0", tmp_path / "2", tmp_path / "10"]
    assert sweep.job_dir(2) == tmp_path / "2"


def test_a_sweep_names_hydras_record_and_the_summary_files_at_its_root(tmp_path: Path):
    sweep = SweepDirectory(tmp_path)
    names = [sweep.multirun_config, sweep.resume_record, sweep.summary_csv, sweep.summary_md, sweep.summary_png]
    assert [path.name for path in names] == [
        "multirun.yaml", "multirun.resume.yaml", "summary.csv", "summary.md", "summary.png"
    ]  # fmt: skip
    assert {path.parent for path in names} == {tmp_path}
