"""The README's commands: those a test can run quickly are run here, as written; every other
one is named with the test that runs it, so a command added to the README without a test
fails here until it has one."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Run here, from the project root, exit status 0 expected.
RUN_HERE = (
    "vaeinpaint experiments list",
    "vaeinpaint doctor",
    "vaeinpaint validate",
)
# Run by other tests (slow ones: dvc, MLflow servers, trained models) or by CI itself.
RUN_ELSEWHERE = {
    "python3 -m venv": ".ci/run runs the README's test command verbatim; the install + dvc repro command: tests/test_pipeline.py",
    ". .venv/bin/activate": ".ci/run",
    "pip install": ".ci/run",
    "dvc repro": "tests/test_pipeline.py",
    "pytest": ".ci/run",
    "python -m vaeinpaint.bench": "tests/test_bench.py",
    "vaeinpaint inpaint": "tests/test_inpaint.py, tests/test_batch.py, tests/test_prior_apps.py",
    "vaeinpaint serve": "tests/test_server.py, tests/test_page.py",
    "vaeinpaint register": "tests/test_tracking_server.py",
    "mlflow models serve": "tests/test_tracking_server.py",
    "mlflow ui": "tests/test_tracking_server.py (the same store through mlflow server)",
    "vaeinpaint experiments queue": "tests/test_presets.py",
    "dvc queue start": "tests/test_presets.py queues; tests/test_pipeline.py runs experiments",
    "dvc exp show": "tests/test_report.py",
    "vaeinpaint report": "tests/test_report.py",
}


def readme_commands() -> list[str]:
    """Each command line of the README's bash blocks, comments and continuations resolved."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


def test_every_readme_command_is_run_by_a_test():
    unknown = [c for c in readme_commands() if not c.startswith(RUN_HERE) and not c.startswith(tuple(RUN_ELSEWHERE))]
    assert unknown == [], "a README command no test runs: run it here (RUN_HERE) or name its test (RUN_ELSEWHERE)"
    assert any(c.startswith(RUN_HERE) for c in readme_commands())


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith(RUN_HERE)])
def test_the_quick_readme_commands_work_as_written(command):
    argv = shlex.split(command)
    program = str(Path(sys.executable).parent / argv[0])  # the command as the install put it beside this Python
    done = subprocess.run([program, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-400:]
    assert done.stdout.strip(), "no output"
