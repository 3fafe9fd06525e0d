"""A throwaway Ray cluster on this machine: a head and more nodes, each with its own CPUs (tests, benchmarks, trying `--engine ray`).

It runs the real `ray start --head` and `ray start --address ...` (one raylet per
node, as on separate machines), on free ports only, with its session files under a
folder the caller names, and stops exactly those nodes on exit, even on failure.
Why not `ray stop`: it kills every Ray process of the machine, including clusters that
are not ours; here the processes are found by the session folder or GCS port in their
command line (and their children) and ended by pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from contextlib import ExitStack, closing
from pathlib import Path

from .base import EngineError

ATTEMPTS = 3
WORKER_PORTS = 24  # per node: one per Ray worker process (driver, actors, probes)


def free_ports(n: int) -> list[int]:
    """`n` distinct ports nothing listens on right now."""
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.socket())) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise EngineError("the `ray` command is not installed: pip install 'daad[ray]'")
    return found


class LocalRayCluster:
    """`with LocalRayCluster(tmp, nodes=2, cpus=1) as c:` gives `c.address` ("127.0.0.1:PORT") of a running cluster."""

    def __init__(self, folder: str | Path, nodes: int = 2, cpus: int = 1):
        self.folder, self.nodes, self.cpus = Path(folder), nodes, cpus
        self.address = ""
        self._env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        self._started = False

    def _start(self, *args: str) -> None:
        ports = free_ports(6 + WORKER_PORTS)
        cmd = [_ray_cli(), "start", *args, f"--num-cpus={self.cpus}", "--num-gpus=0", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1",
               f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
               f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
               f"--runtime-env-agent-port={ports[4]}", f"--metrics-export-port={ports[5]}",
               "--worker-port-list=" + ",".join(map(str, ports[6:])), "--object-store-memory=100000000"]
        res = subprocess.run(cmd, env=self._env, capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise EngineError(f"ray start failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")

    def __enter__(self) -> "LocalRayCluster":
        """Start the nodes; a start that times out is tried again from scratch (up to `ATTEMPTS` times).

        Why: `ray start` gives a raylet a fixed 30 s to register with the GCS, which a
        machine busy with other work can miss (seen here on 2 shared cores).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, ATTEMPTS + 1):
            port, client, dashboard = free_ports(3)
            self.address, self._port = f"127.0.0.1:{port}", port
            self._started = True
            try:
                self._start("--head", f"--port={port}", f"--ray-client-server-port={client}", "--include-dashboard=false",
                            f"--dashboard-port={dashboard}", f"--temp-dir={self.folder}")
                for _ in range(self.nodes - 1):
                    self._start(f"--address={self.address}")
                return self
            except EngineError as exc:
                self.stop()
                if attempt == ATTEMPTS or "timed out" not in str(exc):
                    raise
            except BaseException:
                self.stop()
                raise
        return self

    def processes(self) -> list:
        """This cluster's processes (psutil), children included."""
        import psutil

        marks = (str(self.folder), f":{self._port}")
        roots = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or ())
            if proc.pid != os.getpid() and any(m in cmd for m in marks):
                roots.append(proc)
        found = {p.pid: p for p in roots}
        for p in roots:
            try:
                found.update((c.pid, c) for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return list(found.values())

    def stop(self) -> None:
        """End this cluster's processes by pid (SIGTERM, then SIGKILL after 3 s)."""
        if not self._started:
            return
        self._started = False
        import psutil

        procs = self.processes()
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=3)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass

    def __exit__(self, *exc: object) -> None:
        self.stop()
