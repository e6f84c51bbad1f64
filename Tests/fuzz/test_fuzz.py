"""The fuzz stage of CI: each libFuzzer target of Tests/fuzz for a short, bounded time, as pytest
tests so that a failure shows in the suite's own summary, beside the end-to-end tests.

deploy/test.sh runs this file after Tests/e2e. FUZZ_SECONDS (default 15) is the time per target;
FUZZ_SECONDS=0 skips the stage. A failure prints libFuzzer's report and the failing input in hex
(deploy/fuzz.sh): add that input to Tests/fuzz/regressions/TARGET and a unit test for it."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("FUZZ_SECONDS", "15"))
TARGETS = ["json", "request", "logrecord", "queuerecord", "webhookurl", "rawjson"]

pytestmark = pytest.mark.skipif(SECONDS <= 0, reason="FUZZ_SECONDS=0")


@pytest.fixture(scope="module")
def fuzz_build():
    """One sanitized build of every target (its own package and scratch folder: the normal
    build is untouched)."""
    r = subprocess.run([str(ROOT / "deploy" / "fuzz.sh"), "build"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"fuzz build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz(fuzz_build, target):
    r = subprocess.run([str(ROOT / "deploy" / "fuzz.sh"), target, str(SECONDS)], cwd=ROOT,
                       capture_output=True, text=True, timeout=SECONDS + 300)
    print(r.stdout)
    assert r.returncode == 0, f"fuzz {target} failed:\n{r.stderr[-6000:]}"
