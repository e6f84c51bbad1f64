"""A worker takes its signals in its main thread only (RyzeCore's BackgroundThread): a flood of
SIGHUP, which the README says is ignored, leaves it serving, and SIGTERM afterwards still stops it
gracefully. Before, the store's compactor thread, started before the worker blocked its signals,
could receive one and take the default action: the worker died (exit 129 after about 1,600
SIGHUPs), and a SIGTERM that landed there ended the worker without finishing its requests."""
import os
import signal
import subprocess
import time

from harness import BIN


def test_a_flood_of_sighup_leaves_the_worker_serving_and_sigterm_still_stops_it(tmp_path):
    log = tmp_path / "worker.log"
    # --compact-factor left at its default: the compactor's thread exists.
    worker = subprocess.Popen([BIN, "serve", "--data-dir", str(tmp_path / "data"), "--listen", f"unix:{tmp_path / 's.sock'}",
                               "--log-file", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while "serving" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker did not start"
            time.sleep(0.05)
        sent = 0
        end = time.monotonic() + 2
        while time.monotonic() < end and worker.poll() is None:
            os.kill(worker.pid, signal.SIGHUP)
            sent += 1
        assert worker.poll() is None, f"the worker died of SIGHUP after {sent} of them (exit {worker.returncode})"
        assert sent > 10000
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0
        assert "stopped" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
