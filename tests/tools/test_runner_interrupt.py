"""`airflow-ml run` stops ``dag.test()`` at the approval by interrupting the main thread. A process started in the
background by a non-interactive shell (CI, nohup, cron) inherits SIGINT ignored, and ``_thread.interrupt_main``
then does nothing: CI once hung here for ever. Pinned in a child process started exactly that way."""

from __future__ import annotations

import signal
import subprocess
import sys

CHILD = """
import signal, threading, time
from airflow_ml_provider.tools import runner

assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "the child must start with SIGINT ignored"
watcher = runner._Watcher(thread=threading.Thread(), stop=threading.Event(), parked=threading.Event())
threading.Thread(target=runner._stop_main, args=(watcher,), daemon=True).start()
started = time.monotonic()
try:
    with runner._interruptible():
        while time.monotonic() - started < 60:  # stands for dag.test() polling while it waits for an answer
            time.sleep(0.2)
    print("not interrupted")
except KeyboardInterrupt:
    watcher.stop.set()
    restored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    print(f"interrupted after {time.monotonic() - started:.1f} s; SIGINT ignored again: {restored}")
"""


def test_the_approval_watcher_interrupts_a_run_started_with_sigint_ignored() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what `cmd &` in a script does
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert "interrupted after" in child.stdout and "SIGINT ignored again: True" in child.stdout, child.stdout
