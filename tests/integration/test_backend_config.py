"""--backend-config through the real server: restricting and disabling backends, what
RepositoryIndex, ModelConfig and ServerMetadata then report, and bad flags refused before start.

KIND_GPU models run here on OpenCL (PoCL's CPU device when there is no GPU; POCL_DEVICES=
"pthread pthread" makes it two devices, for the tests that need a second one). Tests skip with
the server's own reason when the build lacks OpenCL or the machine has no OpenCL device. FPGA
(KIND_MODEL) placement runs on XRT's noop emulation, as in test_fpga_serving.py."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import SERVER, assert_close, load_reference, set_gpu_group

EXTENSIONS = ["model_configuration", "model_repository", "statistics", "parameters"]


def built_backends():
    out = subprocess.run([SERVER, "--help"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^Backends in this build:(.*)$", out, re.M)
    assert m, out
    return m.group(1).split()


def need_backend(name):
    if name not in built_backends():
        pytest.skip(f"server built without the {name} backend")


def gpu_model(name="jet_gpu", gpus=None, backend=None, count=1):
    """Adds `name`: the example jet_tagger with one KIND_GPU instance group."""
    def edit(repo):
        shutil.copytree(repo / "jet_tagger", repo / name)
        set_gpu_group(repo / name / "config.json", count, gpus, backend, name=name,
                      group_name="g")
    return edit


def both(*edits):
    def edit(repo):
        for e in edits:
            e(repo)
    return edit


def backends_line(server):
    # one round trip first, so the server is past start-up (see test_opencl_serving.py)
    assert grpcclient.InferenceServerClient(url=server.url).is_server_live()
    return next(l for l in server.log if "event=backends" in l)


def opencl_devices(server):
    """OpenCL devices the server found (allowed or not); skips when there are none."""
    line = backends_line(server)
    m = re.search(r"\bopencl: (?:\d+ of )?(\d+) devices?\b", line)
    if m:
        return int(m.group(1))
    m = re.search(r"\bopencl: unavailable \(--backend-config=\S+ leaves none of the (\d+) devices? "
                  r"found\)", line)
    if m:
        return int(m.group(1))
    why = re.search(r"\bopencl: unavailable \(([^)]*)\)", line)
    pytest.skip("server has no OpenCL device: " + (why.group(1) if why else line))


def index(server):
    c = grpcclient.InferenceServerClient(url=server.url)
    return {m["name"]: m for m in c.get_model_repository_index(as_json=True)["models"]}


def no_cuda_args():
    """Keeps a CUDA device (if any) from taking KIND_GPU models that name no backend."""
    return ["--backend-config=cuda,enabled=false"] if "cuda" in built_backends() else []


def serves_jet_tagger(server, model):
    c = grpcclient.InferenceServerClient(url=server.url)
    inputs, expected = load_reference("jet_tagger", "batch3")
    ins = []
    for name, arr in inputs.items():
        i = grpcclient.InferInput(name, list(arr.shape), "FP32")
        i.set_data_from_numpy(arr)
        ins.append(i)
    res = c.infer(model, ins)
    for name, want in expected.items():
        assert_close(res.as_numpy(name), want)


def test_opencl_disabled_leaves_gpu_model_unavailable_and_cpu_models_serving(server_factory):
    need_backend("opencl")
    s = server_factory(extra=gpu_model(backend="opencl"),
                       args=["--backend-config=opencl,enabled=false"])
    assert "opencl: unavailable (disabled by --backend-config=opencl,enabled=false)" in \
        backends_line(s)
    idx = index(s)
    assert idx["jet_gpu"]["state"] == "UNAVAILABLE", idx["jet_gpu"]
    assert idx["jet_gpu"]["reason"] == (
        "model 'jet_gpu': instance group 'g' (KIND_GPU) has no device: opencl: disabled by "
        "--backend-config=opencl,enabled=false"), idx["jet_gpu"]
    for name in ("facile", "jet_tagger"):
        assert idx[name]["state"] == "READY" and idx[name]["reason"] == "cpu:0 x1", idx[name]
    serves_jet_tagger(s, "jet_tagger")

    md = grpcclient.InferenceServerClient(url=s.url).get_server_metadata(as_json=True)
    ext = md["extensions"]
    assert ext[:len(EXTENSIONS)] == EXTENSIONS  # the real extensions first, unchanged
    states = ext[len(EXTENSIONS):]
    assert [e.split("=", 1)[0] for e in states] == [f"backend:{b}" for b in built_backends()]
    assert "backend:opencl=unavailable (disabled by --backend-config=opencl,enabled=false)" in \
        states
    assert any(e.startswith("backend:cpu=1 device (") for e in states), states


def test_opencl_devices_0_serves_and_model_config_reports_the_placement(server_factory):
    need_backend("opencl")
    s = server_factory(extra=gpu_model(), args=["--backend-config=opencl,devices=0",
                                                *no_cuda_args()])
    n = opencl_devices(s)
    assert re.search(rf"\bopencl: 1 of {n} devices? allowed \(--backend-config devices=0\) \(",
                     backends_line(s)), backends_line(s)
    idx = index(s)
    assert idx["jet_gpu"]["state"] == "READY", idx["jet_gpu"]
    assert idx["jet_gpu"]["reason"] == "opencl:0 x1"
    serves_jet_tagger(s, "jet_gpu")
    c = grpcclient.InferenceServerClient(url=s.url)
    cfg = c.get_model_config("jet_gpu", as_json=True)["config"]
    group = cfg["instance_group"][0]
    assert group["kind"] == "KIND_GPU" and group["gpus"] == [0], group
    assert cfg["parameters"]["gpu_backend"]["string_value"] == "opencl", cfg["parameters"]
    # a CPU model's config is reported as configured: no devices, no gpu_backend
    cpu_cfg = c.get_model_config("jet_tagger", as_json=True)["config"]
    assert "gpus" not in cpu_cfg["instance_group"][0], cpu_cfg["instance_group"]
    assert "gpu_backend" not in cpu_cfg.get("parameters", {})
    ext = c.get_server_metadata(as_json=True)["extensions"]
    assert any(re.match(rf"backend:opencl=1 of {n} devices? allowed \(--backend-config "
                        r"devices=0\) \(", e) for e in ext), ext


def test_cuda_disabled_is_never_loaded(server_factory):
    need_backend("cuda")
    s = server_factory(args=["--backend-config=cuda,enabled=false"])
    assert "cuda: unavailable (disabled by --backend-config=cuda,enabled=false)" in \
        backends_line(s)
    with open(f"/proc/{s.proc.pid}/maps") as f:
        maps = f.read()
    assert "libhltbackend_cuda" not in maps


def test_gpus_the_machine_lacks_make_the_model_unavailable(server_factory):
    need_backend("opencl")
    s = server_factory(extra=gpu_model(gpus=[5], backend="opencl"))
    n = opencl_devices(s)
    idx = index(s)
    assert idx["jet_gpu"]["state"] == "UNAVAILABLE", idx["jet_gpu"]
    assert idx["jet_gpu"]["reason"] == (
        f"model 'jet_gpu': instance group 'g' names device 5, but backend opencl has {n}")
    assert idx["jet_tagger"]["state"] == "READY"


def test_device_list_keeps_backend_numbering_and_excludes(server_factory, monkeypatch):
    """Two OpenCL devices, only device 1 allowed: a group without gpus runs on device 1 (and
    ModelConfig says so), gpus [1] means device 1 (not renumbered), gpus [0] is refused naming
    the flag."""
    need_backend("opencl")
    monkeypatch.setenv("POCL_DEVICES", "pthread pthread")
    s = server_factory(
        extra=both(gpu_model("free", backend="opencl", count=2),
                   gpu_model("one", gpus=[1], backend="opencl"),
                   gpu_model("zero", gpus=[0], backend="opencl")),
        args=["--backend-config=opencl,devices=1"])
    n = opencl_devices(s)
    if n < 2:
        pytest.skip(f"{n} OpenCL device(s); the test needs 2 (POCL_DEVICES had no effect)")
    idx = index(s)
    assert idx["free"]["state"] == "READY" and idx["free"]["reason"] == "opencl:1 x2", idx["free"]
    assert idx["one"]["state"] == "READY" and idx["one"]["reason"] == "opencl:1 x1", idx["one"]
    assert idx["zero"]["state"] == "UNAVAILABLE", idx["zero"]
    assert idx["zero"]["reason"] == (
        "model 'zero': instance group 'g' names opencl:0, which --backend-config=opencl,devices=1 "
        "excludes")
    c = grpcclient.InferenceServerClient(url=s.url)
    assert c.get_model_config("free", as_json=True)["config"]["instance_group"][0]["gpus"] == [1]
    serves_jet_tagger(s, "free")


def test_device_list_leaving_no_device_makes_the_model_unavailable(server_factory):
    need_backend("opencl")
    s = server_factory(extra=gpu_model(backend="opencl"),
                       args=["--backend-config=opencl,devices=7"])
    n = opencl_devices(s)
    want = (f"opencl: unavailable (--backend-config=opencl,devices=7 leaves none of the {n} "
            f"device{'s' if n > 1 else ''} found)")
    assert want in backends_line(s)
    idx = index(s)
    assert idx["jet_gpu"]["state"] == "UNAVAILABLE"
    assert idx["jet_gpu"]["reason"] == (
        f"model 'jet_gpu': instance group 'g' (KIND_GPU) has no device: opencl: "
        f"--backend-config=opencl,devices=7 leaves none of the {n} device{'s' if n > 1 else ''} "
        f"found"), idx["jet_gpu"]


def test_kind_gpu_without_gpus_reports_the_devices_it_runs_on(server_factory):
    s = server_factory(extra=gpu_model())
    n = opencl_devices(s)
    if re.search(r"\bcuda: \d+ devices?\b", backends_line(s)):
        pytest.skip("a CUDA device takes KIND_GPU models here")
    c = grpcclient.InferenceServerClient(url=s.url)
    cfg = c.get_model_config("jet_gpu", as_json=True)["config"]
    assert cfg["instance_group"][0]["gpus"] == list(range(n)), cfg["instance_group"]
    assert cfg["parameters"]["gpu_backend"]["string_value"] == "opencl"
    assert index(s)["jet_gpu"]["reason"] == ", ".join(f"opencl:{d} x1" for d in range(n))


@pytest.mark.parametrize("flag, message", [
    ("--backend-config=nosuch,devices=0",
     "--backend-config=nosuch,devices=0: unknown backend 'nosuch' (backends in this build: cpu"),
    ("--backend-config=opencl,colour=red",
     "--backend-config=opencl,colour=red: unknown setting 'colour' for backend 'opencl' "
     "(settings: devices=<index>[,<index>...] | devices=none | enabled=true|false)"),
    ("--backend-config=opencl",
     "--backend-config=opencl: expected <backend>,<setting>=<value> (settings: "),
    ("--backend-config=opencl,devices=0,,1",
     "--backend-config=opencl,devices=0,,1: devices must be 'none' or a comma-separated list of "
     "device indices 0..255, not '0,,1'"),
    ("--backend-config=opencl,enabled=maybe",
     "--backend-config=opencl,enabled=maybe: enabled must be true or false, not 'maybe'"),
])
def test_bad_backend_config_exits_2_before_starting(tmp_path, flag, message):
    if "nosuch" not in flag:
        need_backend("opencl")
    p = subprocess.run([SERVER, f"--model-repository={tmp_path}", "--grpc-port=0",
                        "--grpc-address=127.0.0.1", "--http-port=0", "--metrics-port=0", flag],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"hltinfer-server: {message}" in p.stderr, p.stderr
    assert "event=server_started" not in p.stderr and "event=backends" not in p.stderr
    if "nosuch" in flag:
        for b in built_backends():
            assert b in p.stderr.split("backends in this build:")[1]


# ---- FPGA (KIND_MODEL) placement, on XRT's noop emulation ----

def fpga_model(name, gpus=None):
    from test_fpga_serving import add_fpga_model

    def edit(repo):
        add_fpga_model(str(repo), name, cus=1)
        if gpus is not None:
            path = repo / name / "config.json"
            cfg = json.loads(path.read_text())
            cfg["instance_group"] = [{"name": "f", "kind": "KIND_MODEL", "gpus": list(gpus)}]
            path.write_text(json.dumps(cfg))
    return edit


@pytest.fixture
def noop_xrt(monkeypatch):
    need_backend("xrt")
    from test_fpga_serving import MAKE_XCLBIN
    if not os.path.exists(MAKE_XCLBIN):
        pytest.skip("hltinfer-make-xclbin not built")
    monkeypatch.setenv("XCL_EMULATION_MODE", "noop")
    monkeypatch.delenv("XILINX_XRT", raising=False)


def test_kind_model_runs_on_the_listed_or_first_allowed_card(server_factory, noop_xrt):
    s = server_factory(extra=both(fpga_model("fpga_auto"), fpga_model("fpga_card1", gpus=[1])),
                       args=["--backend-config=xrt,devices=0"])
    line = backends_line(s)
    m = re.search(r"\bxrt: 1 of (\d+) devices? allowed", line)
    if not m:
        pytest.skip("no XRT noop device: " + line)
    n = int(m.group(1))
    idx = index(s)
    assert idx["fpga_auto"]["state"] == "READY", idx["fpga_auto"]
    assert idx["fpga_auto"]["reason"] == "xrt:0 x1"
    c = grpcclient.InferenceServerClient(url=s.url)
    cfg = c.get_model_config("fpga_auto", as_json=True)["config"]
    assert cfg["instance_group"][0]["kind"] == "KIND_MODEL"
    assert cfg["instance_group"][0]["gpus"] == [0], cfg["instance_group"]
    assert "gpu_backend" not in cfg["parameters"]
    x = np.zeros((2, 15), np.float32)
    i = grpcclient.InferInput("input", [2, 15], "FP32")
    i.set_data_from_numpy(x)
    assert c.infer("fpga_auto", [i]).as_numpy("output").shape == (2, 1)
    assert idx["fpga_card1"]["state"] == "UNAVAILABLE"
    want = ("names device 1, but backend xrt has 1" if n == 1 else
            "names xrt:1, which --backend-config=xrt,devices=0 excludes")
    assert want in idx["fpga_card1"]["reason"], idx["fpga_card1"]
