"""FPGA (XRT backend) models served end to end, without an FPGA.

XRT's noop emulation (XCL_EMULATION_MODE=noop, libxrt_noop) runs the whole XRT C API flow --
xclbin load, kernel open per compute unit, buffer objects, syncs, runs to COMPLETED -- on an
xclbin that hltinfer-make-xclbin writes (metadata sections, no bitstream). It computes nothing:
the outputs are whatever the output buffers held. So these tests check PLUMBING, not numbers
(hence the test_noop_plumbing_ names): configs, argument binding, the buffer ring, the spread
over compute units, errors at load time, and the server serving on when XRT is absent. The
numbers are checked on a real card with the procedure in server/backend/xrt/README.md.

The per-run evidence is the server's verbose log: one line per completed kernel run,
`event=xrt_run model=M cu=CU slot=S rows=R state=COMPLETED runs=N`.

On a machine with an Alveo card, test_hardware_matches_the_cpu_model compares a real bitstream
with the CPU model of the same network (HLT_FPGA_* variables, see the README); without them it
skips."""
import concurrent.futures
import json
import os
import re
import subprocess
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import BUILD

MAKE_XCLBIN = os.path.join(BUILD, "server", "backend", "xrt", "hltinfer-make-xclbin")
USER_XILINX_XRT = os.environ.get("XILINX_XRT")  # the card's XRT, for the hardware test
RUN = re.compile(r"event=xrt_run model=(\S+) cu=(\S+) slot=(\d+) rows=(\d+) state=(\S+)")

pytestmark = pytest.mark.skipif(not os.path.exists(MAKE_XCLBIN),
                                reason="server built without the XRT backend (no libxrt-dev)")


@pytest.fixture(autouse=True)
def noop_xrt(monkeypatch):
    """XRT's noop emulation for the server (Popen inherits the environment); XILINX_XRT unset, so
    the server prepares its own for Debian's layout."""
    monkeypatch.setenv("XCL_EMULATION_MODE", "noop")
    monkeypatch.delenv("XILINX_XRT", raising=False)


def make_xclbin(path, kernel, cus, args="input:buffer,output:buffer,rows:scalar", banks=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = [MAKE_XCLBIN, path, "--kernel", kernel, "--cus", str(cus), "--args", args]
    if banks:
        cmd += ["--banks", str(banks)]
    subprocess.run(cmd, check=True)


def add_fpga_model(repo, name, kernel="hls4ml_facile", cus=2, params=None, xclbin=True,
                   xclbin_kernel=None, xclbin_args="input:buffer,output:buffer,rows:scalar",
                   max_batch_size=1024, dims_in=(15,), dims_out=(1,)):
    """A FACILE-like bitstream model: input [15] -> output [1], ap_fixed<16,6> on the bus."""
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    p = {"kernel_name": kernel, "io_format": "ap_fixed<16,6,AP_RND,AP_SAT>",
         "values_per_word": "32", "argument_order": "input,output,rows"}
    p.update(params or {})
    cfg = {"name": name, "backend": "xrt", "max_batch_size": max_batch_size,
           "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": list(dims_in)}],
           "output": [{"name": "output", "data_type": "TYPE_FP32", "dims": list(dims_out)}],
           "dynamic_batching": {"max_queue_delay_microseconds": 200},
           "parameters": {k: {"string_value": v} for k, v in p.items()}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    if xclbin:
        make_xclbin(os.path.join(d, "1", "model.xclbin"), xclbin_kernel or kernel, cus,
                    xclbin_args, banks=cus)
    else:
        os.makedirs(os.path.join(d, "1"), exist_ok=True)


def infer(c, model, rows, seed=0):
    x = np.random.default_rng(seed).standard_normal((rows, 15)).astype(np.float32)
    i = grpcclient.InferInput("input", [rows, 15], "FP32")
    i.set_data_from_numpy(x)
    return c.infer(model, [i]).as_numpy("output")


def runs(server, model, n=0, rows=0, timeout=20):
    """The completed-run log lines of model: [(cu, slot, rows)], once there are at least n of
    them covering at least `rows` rows (a bounded wait for the log pump to read them)."""
    end = time.monotonic() + timeout
    while True:
        got = [(m.group(2), int(m.group(3)), int(m.group(4))) for line in list(server.log)
               if (m := RUN.search(line)) and m.group(1) == model and m.group(5) == "COMPLETED"]
        if (len(got) >= n and sum(r for _, _, r in got) >= rows) or time.monotonic() > end:
            return got
        time.sleep(0.02)


def index(c):
    return {m["name"]: m for m in c.get_model_repository_index(as_json=True)["models"]}


def test_noop_plumbing_model_loads_and_infers_through_grpc(server_factory):
    s = server_factory(lambda repo: add_fpga_model(repo, "facile_fpga", cus=2))
    c = grpcclient.InferenceServerClient(url=s.url)
    assert c.is_model_ready("facile_fpga")
    assert c.is_server_ready()  # every model, CPU and FPGA, loaded
    cfg = c.get_model_config("facile_fpga", as_json=True)["config"]
    assert cfg["backend"] == "xrt"
    assert cfg["parameters"]["io_format"]["string_value"] == "ap_fixed<16,6,AP_RND,AP_SAT>"
    out = infer(c, "facile_fpga", 7)
    assert out.shape == (7, 1) and out.dtype == np.float32
    got = runs(s, "facile_fpga", rows=7)
    assert got, s.log_text()[-3000:]
    assert {cu for cu, _, _ in got} <= {"hls4ml_facile_1", "hls4ml_facile_2"}
    assert sum(r for _, _, r in got) == 7  # every row went through a run that COMPLETED
    assert "event=xrt_xclbin_loaded" in s.log_text()
    # the CPU models serve beside it
    assert c.is_model_ready("facile") and c.is_model_ready("jet_tagger")


def test_noop_plumbing_runs_go_to_the_configured_compute_unit(server_factory):
    s = server_factory(lambda repo: add_fpga_model(
        repo, "one_cu", cus=3, params={"compute_units": '["hls4ml_facile_2"]'}))
    c = grpcclient.InferenceServerClient(url=s.url)
    for k in range(5):
        assert infer(c, "one_cu", 3, seed=k).shape == (3, 1)
    got = runs(s, "one_cu", 5)
    assert len(got) == 5
    assert {cu for cu, _, _ in got} == {"hls4ml_facile_2"}


def test_noop_plumbing_ring_slots_are_reused_over_many_requests(server_factory):
    # 2 CUs x 2 slots = 4 buffer sets, 24 sequential requests: every slot serves several runs
    s = server_factory(lambda repo: add_fpga_model(repo, "ring", cus=2,
                                                   params={"ring_slots": "2"}))
    c = grpcclient.InferenceServerClient(url=s.url)
    for k in range(24):
        assert infer(c, "ring", 1, seed=k).shape == (1, 1)
    got = runs(s, "ring", 24)
    assert len(got) == 24
    slots = [slot for _, slot, _ in got]
    assert set(slots) == {0, 1, 2, 3}
    assert all(slots.count(k) == 6 for k in range(4))  # the ring turns: round robin
    assert {cu for cu, _, _ in got} == {"hls4ml_facile_1", "hls4ml_facile_2"}
    assert s.stop() == 0
    closed = dict(re.findall(r"event=xrt_cu_closed model=ring cu=(\S+) runs=(\d+)", s.log_text()))
    assert closed == {"hls4ml_facile_1": "12", "hls4ml_facile_2": "12"}


def test_noop_plumbing_concurrent_requests_spread_over_cus(server_factory):
    s = server_factory(lambda repo: add_fpga_model(repo, "spread", cus=4))
    c = grpcclient.InferenceServerClient(url=s.url)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda k: infer(grpcclient.InferenceServerClient(url=s.url),
                                             "spread", 8, seed=k), range(64)))
    assert all(o.shape == (8, 1) for o in outs)
    got = runs(s, "spread", 4, rows=64 * 8)
    assert sum(r for _, _, r in got) == 64 * 8
    assert {cu for cu, _, _ in got} == {f"hls4ml_facile_{k}" for k in range(1, 5)}
    stats = c.get_inference_statistics("spread", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) == 64 * 8


def test_noop_plumbing_fixed_rows_per_run_splits_pads_and_wraps_the_ring(server_factory):
    s = server_factory(lambda repo: add_fpga_model(repo, "fixed", cus=2,
                                                   params={"rows_per_run": "64",
                                                           "ring_slots": "2"}))
    c = grpcclient.InferenceServerClient(url=s.url)
    assert infer(c, "fixed", 150).shape == (150, 1)
    got = runs(s, "fixed", 3, rows=150)
    assert sorted(r for _, _, r in got) == [22, 64, 64]  # 150 rows = 64 + 64 + 22 (padded)
    # one batch of 1000 rows = 16 runs through 4 buffer sets: the ring wraps inside the batch,
    # each slot waited for and reused while the others are in flight
    assert infer(c, "fixed", 1000).shape == (1000, 1)
    got = runs(s, "fixed", 3 + 16, rows=1150)[3:]
    assert len(got) == 16 and sum(r for _, _, r in got) == 1000
    assert sorted({slot for _, slot, _ in got}) == [0, 1, 2, 3]
    assert {cu for cu, _, _ in got} == {"hls4ml_facile_1", "hls4ml_facile_2"}


def test_noop_plumbing_faast_style_kernel_with_fixed_runs_and_dense_output(server_factory):
    # FaaST's alveo_hls4ml: (in, out), 16384 rows a run, outputs 32 rows to a bus word
    s = server_factory(lambda repo: add_fpga_model(
        repo, "faast", kernel="alveo_hls4ml", cus=4, max_batch_size=16000,
        xclbin_args="in:buffer,out:buffer",
        params={"argument_order": "input,output", "rows_per_run": "16384",
                "output_layout": "dense", "io_format": "ap_fixed<16,6>"}))
    c = grpcclient.InferenceServerClient(url=s.url)
    assert infer(c, "faast", 16000).shape == (16000, 1)
    assert infer(c, "faast", 3).shape == (3, 1)
    got = runs(s, "faast", 2, rows=16003)
    assert sorted(r for _, _, r in got) == [3, 16000]
    assert "output_format=ap_fixed<16,6,AP_TRN,AP_WRAP>/32/dense" in s.log_text()


def broken_fpga_models(repo):
    add_fpga_model(repo, "fpga_ok", cus=2)
    add_fpga_model(repo, "fpga_no_xclbin", xclbin=False)
    add_fpga_model(repo, "fpga_wrong_kernel", kernel="facile_v2", xclbin_kernel="hls4ml_facile")
    add_fpga_model(repo, "fpga_wrong_args",
                   xclbin_args="input:buffer,output:buffer,rows:scalar,scale:scalar")
    add_fpga_model(repo, "fpga_bad_format", params={"io_format": "ap_fixd<16,6>"})
    add_fpga_model(repo, "fpga_too_many_cus", cus=2, params={"compute_units": "3"})


def test_load_errors_are_reported_and_the_rest_serves(server_factory):
    s = server_factory(broken_fpga_models)
    c = grpcclient.InferenceServerClient(url=s.url)
    idx = index(c)
    for name in ("facile", "jet_tagger", "fpga_ok"):
        assert idx[name]["state"] == "READY", (name, idx[name])
    expect = {
        "fpga_no_xclbin": ["model.xclbin", "not found"],
        "fpga_wrong_kernel": ["kernel_name", "'facile_v2' is not in", "hls4ml_facile"],
        "fpga_wrong_args": ["argument_order", "lists 3 arguments", "takes 4", "scale"],
        "fpga_bad_format": ["io_format", "ap_fixd"],
        "fpga_too_many_cus": ["compute_units", "asks for 3", "has 2"],
    }
    for name, fragments in expect.items():
        assert idx[name]["state"] == "UNAVAILABLE", (name, idx[name])
        for frag in fragments:
            assert frag in idx[name]["reason"], (name, frag, idx[name]["reason"])
        assert name in idx[name]["reason"]
    assert infer(c, "fpga_ok", 2).shape == (2, 1)
    x = np.zeros((2, 15), np.float32)
    i = grpcclient.InferInput("input", [2, 15], "FP32")
    i.set_data_from_numpy(x)
    assert c.infer("facile", [i]).as_numpy("output").shape == (2, 1)


def test_a_card_holds_one_xclbin_at_a_time(server_factory):
    def extra(repo):
        add_fpga_model(repo, "a_fpga", kernel="kernel_a")
        add_fpga_model(repo, "b_fpga", kernel="kernel_b")  # another xclbin, same card

    s = server_factory(extra)
    idx = index(grpcclient.InferenceServerClient(url=s.url))
    assert idx["a_fpga"]["state"] == "READY"
    assert idx["b_fpga"]["state"] == "UNAVAILABLE"
    assert "one xclbin at a time" in idx["b_fpga"]["reason"]
    assert "a_fpga" in idx["b_fpga"]["reason"]


def test_fpga_model_unavailable_without_xrt_while_the_rest_serves(server_factory, tmp_path,
                                                                   monkeypatch):
    empty = tmp_path / "no_xrt"
    empty.mkdir()
    monkeypatch.setenv("XILINX_XRT", str(empty))
    s = server_factory(lambda repo: add_fpga_model(repo, "facile_fpga"))
    c = grpcclient.InferenceServerClient(url=s.url)
    idx = index(c)
    assert idx["facile_fpga"]["state"] == "UNAVAILABLE"
    reason = idx["facile_fpga"]["reason"]
    assert "KIND_MODEL" in reason and "xrt" in reason and str(empty) in reason, reason
    assert "xrt: unavailable" in s.log_text()
    assert c.is_model_ready("facile") and c.is_model_ready("jet_tagger")
    x = np.zeros((3, 15), np.float32)
    i = grpcclient.InferInput("input", [3, 15], "FP32")
    i.set_data_from_numpy(x)
    assert c.infer("facile", [i]).as_numpy("output").shape == (3, 1)


@pytest.mark.skipif(not (os.environ.get("HLT_FPGA_XCLBIN") and os.environ.get("HLT_FPGA_ONNX")),
                    reason="no FPGA bitstream given (HLT_FPGA_XCLBIN, HLT_FPGA_ONNX, "
                           "HLT_FPGA_CONFIG; see server/backend/xrt/README.md)")
def test_hardware_matches_the_cpu_model(server_factory, monkeypatch):
    """A real card: the bitstream (HLT_FPGA_XCLBIN, config HLT_FPGA_CONFIG) against the ONNX
    model it was built from (HLT_FPGA_ONNX) on the CPU, same inputs, within HLT_FPGA_ATOL
    (default 0.05, an ap_fixed<16,6> budget: set it from hls4ml's own csim comparison)."""
    import shutil
    monkeypatch.delenv("XCL_EMULATION_MODE", raising=False)
    if USER_XILINX_XRT:
        monkeypatch.setenv("XILINX_XRT", USER_XILINX_XRT)
    cfg_path = os.environ.get("HLT_FPGA_CONFIG") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "server", "backend", "xrt", "example", "facile_fpga", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["name"] = "hw_fpga"

    def extra(repo):
        os.makedirs(os.path.join(repo, "hw_fpga", "1"))
        with open(os.path.join(repo, "hw_fpga", "config.json"), "w") as f:
            json.dump(cfg, f)
        shutil.copy(os.environ["HLT_FPGA_XCLBIN"], os.path.join(repo, "hw_fpga", "1",
                                                                 "model.xclbin"))
        os.makedirs(os.path.join(repo, "hw_cpu", "1"))
        shutil.copy(os.environ["HLT_FPGA_ONNX"], os.path.join(repo, "hw_cpu", "1", "model.onnx"))
        with open(os.path.join(repo, "hw_cpu", "config.json"), "w") as f:
            json.dump({"name": "hw_cpu", "max_batch_size": cfg.get("max_batch_size", 0),
                       "instance_group": [{"kind": "KIND_CPU", "count": 1}]}, f)

    s = server_factory(extra)
    c = grpcclient.InferenceServerClient(url=s.url)
    assert c.is_model_ready("hw_fpga"), index(c)["hw_fpga"]
    atol = float(os.environ.get("HLT_FPGA_ATOL", "0.05"))
    rng = np.random.default_rng(11)
    mbs = cfg.get("max_batch_size", 0)
    for rows in sorted({r for r in (1, 7, 1000, mbs) if 1 <= r <= max(mbs, 1)}):
        inputs = {}
        for t in cfg["input"]:
            shape = [rows] + [int(d) for d in t["dims"]] if cfg.get("max_batch_size", 0) else \
                [int(d) for d in t["dims"]]
            inputs[t["name"]] = rng.uniform(-4, 4, shape).astype(np.float32)
        outs = {}
        for model in ("hw_fpga", "hw_cpu"):
            ins = []
            for name, x in inputs.items():
                i = grpcclient.InferInput(name, list(x.shape), "FP32")
                i.set_data_from_numpy(x)
                ins.append(i)
            outs[model] = c.infer(model, ins)
        for t in cfg["output"]:
            np.testing.assert_allclose(outs["hw_fpga"].as_numpy(t["name"]),
                                       outs["hw_cpu"].as_numpy(t["name"]), rtol=0, atol=atol)
