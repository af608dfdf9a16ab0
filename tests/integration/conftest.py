"""Fixtures that run the real hltinfer-server on 127.0.0.1 for the integration tests.

The server binary comes from $HLT_BUILD_ROOT (default: build/). Each server gets a fresh model
repository in a temporary directory (a copy of models/ plus whatever a test adds), binds a free
port (--grpc-port=0; the port is read from the server's start-up log line), and is stopped with
SIGTERM at the end; the fixture asserts that it exits 0 (under ASan this also catches leaks)."""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

ROOT = os.environ.get("HLT_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("HLT_BUILD_ROOT") or os.path.join(ROOT, "build")
SERVER = os.path.join(BUILD, "server", "hltinfer-server")
MODELS = os.path.join(ROOT, "models")


class Server:
    def __init__(self, repo, args=()):
        self.repo = repo
        self.log = []
        self.proc = subprocess.Popen([SERVER, f"--model-repository={repo}", "--grpc-port=0",
                                      "--grpc-address=127.0.0.1", "--http-port=0", "--metrics-port=0",
                                      "--log-verbose=1", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = None
        ready = threading.Event()

        def pump():
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.log.append(line)
                m = re.search(r"event=server_started .*grpc_port=(\d+) http_port=(-?\d+) "
                              r"metrics_port=(-?\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    self.http_port = int(m.group(2))
                    self.metrics_port = int(m.group(3))
                    ready.set()
            ready.set()

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()
        if not ready.wait(60) or self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.log))
        self.url = f"127.0.0.1:{self.port}"

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.pump.join(5)
        return rc

    def log_text(self):
        return "\n".join(self.log)


def make_repo(tmp_path, extra=None):
    """A copy of the bundled models (without reference data) in tmp_path/repo."""
    repo = tmp_path / "repo"
    shutil.copytree(MODELS, repo, ignore=shutil.ignore_patterns("reference", "*.py", "*.md"))
    if extra:
        extra(repo)
    return repo


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def start(extra=None, args=()):
        repo = make_repo(tmp_path / f"s{len(servers)}", extra)
        s = Server(str(repo), args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.stop()
        assert rc == 0, f"server exited {rc}:\n{s.log_text()[-4000:]}"


@pytest.fixture
def server(server_factory):
    return server_factory()


def set_gpu_group(config_path, count=1, gpus=None, backend=None, name=None, group_name=None):
    """Rewrites a model's config.json to one KIND_GPU instance group of `count` instances
    (on `gpus` when given), with parameters.gpu_backend = `backend` when given, and the model
    name `name` when given."""
    cfg = json.loads(config_path.read_text())
    if name:
        cfg["name"] = name
    group = {"kind": "KIND_GPU", "count": count}
    if group_name:
        group = {"name": group_name, **group}
    if gpus is not None:
        group["gpus"] = list(gpus)
    cfg["instance_group"] = [group]
    if backend:
        cfg.setdefault("parameters", {})["gpu_backend"] = {"string_value": backend}
    config_path.write_text(json.dumps(cfg, indent=2))


def load_reference(model, case):
    """Inputs and outputs of a committed reference case: {name: ndarray}."""
    d = os.path.join(MODELS, model, "reference")
    with open(os.path.join(d, case + ".json")) as f:
        man = json.load(f)

    def read(entries):
        out = {}
        for e in entries:
            assert e["datatype"] == "FP32"
            a = np.fromfile(os.path.join(d, e["file"]), dtype="<f4")
            out[e["name"]] = a.reshape(e["shape"])
        return out

    return read(man["inputs"]), read(man["outputs"])


def reference_cases(model):
    d = os.path.join(MODELS, model, "reference")
    return sorted(f[:-5] for f in os.listdir(d) if f.endswith(".json"))


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
