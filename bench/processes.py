"""The processes a run starts and watches: workers, the scheduler and the API, each
``python -m workers.cli ...`` in a process group of its own, logging to a file, killed with
the bench; and what /proc says of them (descendants, peak memory, CPU time)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.config import BenchError

# The API in two processes, as in production: one takes about 200 callbacks/s on this
# machine, and every message brings two.
API_PROCESSES = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- what /proc says ---------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc; psutil is not a dependency)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _status_mb(pid: int, name: str) -> float | None:
    """A memory line of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``) in MB, or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of ``pid`` in MB, or None if it is gone."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float | None:
    """VmRSS (resident set now) of ``pid`` in MB, or None if it is gone."""
    return _status_mb(pid, "VmRSS")


def reset_own_peak_rss() -> bool:
    """Start this process's VmHWM afresh from its current RSS (Linux ``clear_refs`` 5), so
    :func:`peak_rss_mb` then tells the peak of what follows; False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def tree_peak_rss(pid: int) -> dict[str, float]:
    """Peak RSS of a worker's main process and each of its pool processes, in MB."""
    peaks: dict[str, float] = {}
    main = peak_rss_mb(pid)
    if main is not None:
        peaks[f"main:{pid}"] = round(main, 1)
    for child in children(pid):
        rss = peak_rss_mb(child)
        if rss is not None:
            peaks[f"child:{child}"] = round(rss, 1)
    return peaks


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def cpu_snapshot(groups: Mapping[str, list[int]]) -> dict[str, float]:
    """CPU seconds per group of processes."""
    return {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}


# -- starting and waiting ----------------------------------------------------------------
def die_with_parent() -> None:
    """In a spawned process: SIGKILL it when the bench dies, even by SIGKILL, so no orphan
    worker is left consuming Redis DB 14 for the next run (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, size: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"


@dataclass
class Supervisor:
    """Starts ``riskcast`` processes with ``env`` (plus each one's own variables) and stops
    them; every process it started stays in :attr:`procs` for the logs."""

    workdir: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "workers.cli", *args],
                env={**self.env, **(env or {})},
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopping it takes its pool too
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_workers(
        self, n: int, concurrency: int, *, queues: str | None = None, rate: float | None = None
    ) -> list[Proc]:
        args = ["worker", "--concurrency", str(concurrency), "--loglevel", "WARNING"]
        if queues:
            args += ["--queues", queues]
        env = {"RISKCAST_SEND_RATE": str(rate)} if rate else None
        return [self.spawn("worker", *args, env=env) for _ in range(n)]

    def start_services(self, api_port: int) -> tuple[Proc, Proc]:
        """The API (callbacks land there) on ``api_port`` and the scheduler; returns them
        once the API answers its health check."""
        api = self.spawn(
            "api",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
            "--workers",
            str(API_PROCESSES),
            env={"RISKCAST_SECRET_KEY": secrets.token_hex(16)},
        )
        scheduler = self.spawn("scheduler", "scheduler")

        def api_up() -> bool:
            self.check_alive([api, scheduler])
            try:
                return (
                    requests.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1).status_code
                    == 200
                )
            except requests.RequestException:
                return False

        wait_until(api_up, 60, "the API to start", 0.1)
        return api, scheduler

    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.name == "worker"]

    def stop(self, procs: list[Proc], timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown) to each process group, SIGKILL what outlives it."""
        live = [p for p in procs if p.popen.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(10)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)  # pool children left behind

    def check_alive(self, procs: list[Proc]) -> bool:
        """Raise if any of ``procs`` has exited; True otherwise (usable in a predicate)."""
        for proc in procs:
            if proc.popen.poll() is not None:
                raise BenchError(f"{proc.name} exited with {proc.popen.returncode}: {proc.tail()}")
        return True

    def wait_worker_ready(self, procs: list[Proc], concurrency: int, timeout: float = 60) -> None:
        """Ready once every worker has its pool processes and Celery's consumer is up
        (the master registers in Redis's kombu bindings; a short settle covers the rest)."""

        def pools_up() -> bool:
            self.check_alive(procs)
            return all(len(children(p.popen.pid)) >= concurrency for p in procs)

        wait_until(pools_up, timeout, "the workers to start", 0.1)
        time.sleep(1.0)
