"""P2, send throughput: deliveries per second end to end (worker -> SDK -> simulator ->
signed callback -> API -> database) against its ceiling, the same number of processes
calling ``client.messages.create`` in a loop (``python -m bench.p2_send raw ...`` is one of
them), with and without the status callbacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from bench.config import TARGETS, BenchConfig, BenchError
from bench.environment import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, RAW_BASE, BenchEnv, phone
from bench.processes import Proc, children, cpu_snapshot, die_with_parent, pids_named, wait_until
from broadcaster.deliveries.callbacks import STATUS_PATH


def raw_sender(
    base_url: str, duration: float, index: int, status_callback: str | None = None
) -> tuple[int, float]:
    """One process of the raw ceiling: ``client.messages.create`` in a loop, as fast as the
    simulator answers (with ``status_callback``, each message asks for its callbacks).
    Says ``ready`` on stdout, waits for a start time (wall clock) on stdin, then returns how
    many it created in the window and its own CPU seconds."""
    from twilio.rest import Client  # noqa: PLC0415 - only the raw sender processes need it

    from workers.providers.twilio import BaseUrlHttpClient  # noqa: PLC0415

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=BaseUrlHttpClient(base_url, timeout=10.0))
    body = "Somchai 12: ກວດ COVID-19 ຟຣີ. ໂທ 1166."
    client.messages.create(to=phone(RAW_BASE + index * 100_000), from_=FROM_NUMBER, body=body)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start_at = float(sys.stdin.readline())
    while time.time() < start_at:
        time.sleep(0.002)
    cpu_0 = sum(os.times()[:2])
    end = start_at + duration
    sent = 0
    while time.time() < end:
        client.messages.create(
            to=phone(RAW_BASE + index * 100_000 + sent % 100_000),
            from_=FROM_NUMBER,
            body=body,
            **({"status_callback": status_callback} if status_callback else {}),
        )
        sent += 1
    return sent, sum(os.times()[:2]) - cpu_0


def raw_main(argv: list[str]) -> None:
    base_url, duration, index, *callback = argv
    sent, cpu = raw_sender(base_url, float(duration), int(index), *callback)
    sys.stdout.write(f"{sent} {cpu:.3f}\n")


def measure_raw(
    env: BenchEnv, processes: int, seconds: float, *, callbacks: bool = False
) -> dict[str, Any]:
    """The ceiling: ``processes`` processes (one thread each, as a prefork pool process)
    creating messages against the same simulator, with no queue and no database.

    With ``callbacks``, each message names the API's status callback URL (for a delivery
    that does not exist), so the simulator posts its two signed callbacks and the API
    checks and applies them: the ceiling of any design that takes Twilio's callbacks on
    this machine. Its rate is the lower of messages created and callbacks taken (halved).
    """
    env.core.reset()
    extra = [f"{env.api_url}{STATUS_PATH}?d=0"] if callbacks else []
    taken_0 = env.core.callbacks_delivered
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "bench.p2_send",
                "raw",
                env.sim.url,
                repr(seconds),
                str(i),
                *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
        )
        for i in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdin is not None  # noqa: S101
            if proc.stdout.readline().strip() != "ready":
                raise BenchError(
                    f"a raw sender failed to start: {proc.stderr and proc.stderr.read()[-500:]}"
                )
        start_at = time.time() + 0.2
        sim_cpu_0 = sum(os.times()[:2])
        for proc in procs:
            assert proc.stdin is not None  # noqa: S101
            proc.stdin.write(f"{start_at!r}\n")
            proc.stdin.flush()
        counts, cpus = [], []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 60)
            if proc.returncode != 0:
                raise BenchError(f"a raw sender failed: {err.strip()[-500:]}")
            count, cpu = out.strip().splitlines()[-1].split()
            counts.append(int(count))
            cpus.append(float(cpu))
        sim_cpu = sum(os.times()[:2]) - sim_cpu_0
        callbacks_taken = env.core.callbacks_delivered - taken_0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    if callbacks:
        env.core.wait_for_callbacks(60)
    env.core.reset()
    total = max(1, sum(counts))
    per_s = sum(counts) / seconds
    if callbacks:
        per_s = min(per_s, callbacks_taken / 2 / seconds)
    return {
        "processes": processes,
        "threads_per_process": 1,
        "seconds": seconds,
        "requests": sum(counts),
        "with_callbacks": callbacks,
        "callbacks_taken": callbacks_taken if callbacks else None,
        "per_s": round(per_s, 1),
        "cpu_ms_per_request": {
            "senders (SDK)": round(1000 * sum(cpus) / total, 2),
            "bench + simulator": round(1000 * sim_cpu / total, 2),
        },
    }


def measure_send(
    env: BenchEnv, campaign_id: int, cfg: BenchConfig, raw: dict[str, Any]
) -> tuple[dict[str, Any], list[Proc]]:
    """Deliveries per second end to end (worker -> SDK -> simulator -> signed callback ->
    API -> database), sending the fanned-out campaign; the workers keep running for P3."""
    workers = env.processes.start_workers(cfg.send_workers, cfg.send_concurrency)
    wait_until(
        lambda: env.processes.check_alive(workers) and env.core.accepted_count > 0,
        90,
        "the first message to be sent",
    )
    time.sleep(cfg.send_warmup)
    groups = {
        "workers (Celery main)": [w.popen.pid for w in workers],
        "workers (pool)": [p for w in workers for p in children(w.popen.pid)],
        "api": [env.api.popen.pid, *children(env.api.popen.pid)],
        "postgres (all backends)": pids_named("postgres"),
        "redis": pids_named("redis-server"),
        "bench + simulator": [os.getpid()],
    }
    delivered_0 = env.count(campaign_id, ("delivered",))
    accepted_0 = env.core.accepted_count
    cpu_0 = cpu_snapshot(groups)
    started = time.monotonic()
    time.sleep(cfg.send_window)
    accepted_1 = env.core.accepted_count
    cpu_1 = cpu_snapshot(groups)
    delivered_1 = env.count(campaign_id, ("delivered",))
    window = time.monotonic() - started
    sent = max(1, accepted_1 - accepted_0)
    cpu_ms = {k: round(1000 * (cpu_1[k] - cpu_0[k]) / sent, 2) for k in groups}
    env.processes.check_alive(workers)
    accepted_per_s = (accepted_1 - accepted_0) / window
    delivered_per_s = (delivered_1 - delivered_0) / window
    end_to_end = min(accepted_per_s, delivered_per_s)
    with_callbacks = raw.get("with_callbacks_ceiling", {}).get("per_s")
    return {
        "processes": cfg.send_workers * cfg.send_concurrency,
        "workers": cfg.send_workers,
        "concurrency": cfg.send_concurrency,
        "threads_per_process": 1,
        "window_s": round(window, 2),
        "accepted_per_s": round(accepted_per_s, 1),
        "delivered_per_s": round(delivered_per_s, 1),
        "per_s": round(end_to_end, 1),
        "raw_per_s": raw["per_s"],
        "raw": raw,
        "cpu_ms_per_delivery": cpu_ms,
        "cpu_ms_per_delivery_total": round(sum(cpu_ms.values()), 2),
        "machine_cpu_ms_per_s": round(1000 * sum(cpu_1[k] - cpu_0[k] for k in groups) / window, 0),
        "ratio": round(end_to_end / raw["per_s"], 3) if raw["per_s"] else 0.0,
        "ratio_of": "end-to-end deliveries/s (min of accepted and delivered) / raw creates/s",
        # The same loop with each message's two callbacks posted and taken by the API.
        "raw_with_callbacks_per_s": with_callbacks,
        "ratio_to_raw_with_callbacks": (
            round(end_to_end / with_callbacks, 3) if with_callbacks else None
        ),
        "target": f">= {TARGETS['send_ratio']} x raw",
        "meets_target": end_to_end >= TARGETS["send_ratio"] * raw["per_s"],
    }, workers


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "raw":
        raw_main(sys.argv[2:])
    else:
        sys.stderr.write("usage: riskcast bench (this module's own entry is for raw senders)\n")
        raise SystemExit(2)
