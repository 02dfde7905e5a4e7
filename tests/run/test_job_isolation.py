"""Jobs run one after another in one process (Hydra's in-process launcher) do not leak state."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from trainer.engine import TrainerEngine

pytestmark = pytest.mark.slow


def test_a_job_leaves_the_environment_as_it_found_it(make_config):
    before = dict(os.environ)
    result = TrainerEngine().run_job(make_config("train.max_steps=2", "precision=bf16"))
    assert result.success, result.error_message
    assert dict(os.environ) == before


@pytest.mark.long
def test_peak_memory_does_not_grow_job_after_job(model_cache, tmp_path):
    script = textwrap.dedent(
        f"""
        import resource
        from dataclasses import replace
        from trainer.config.schema import TrainerConfig
        from trainer.engine import TrainerEngine

        base = TrainerConfig()
        base.model.cache_dir = {str(model_cache)!r}
        base.train = replace(base.train, max_steps=4, eval_steps=4, save_steps=4, logging_steps=2)
        for job in range(6):
            config = replace(base, seed=job)
            config.run.output_dir = {str(tmp_path)!r} + f"/{{job}}"
            assert TrainerEngine().run_job(config).success
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    peaks_kib = [int(line) for line in completed.stdout.split()]
    assert len(peaks_kib) == 6
    assert peaks_kib[-1] <= 1.15 * peaks_kib[0], peaks_kib
