"""The HTTP side: KServe v2 health endpoints on --http-port and Triton-named Prometheus
metrics on --metrics-port, scraped by a real Prometheus server (Debian's `prometheus`)."""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import load_reference


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def infer_jet(server, n, rows=3):
    c = grpcclient.InferenceServerClient(url=server.url)
    inputs, _ = load_reference("jet_tagger", "batch3")
    x = inputs["jet_features"][:rows]
    for _ in range(n):
        i = grpcclient.InferInput("jet_features", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        c.infer("jet_tagger", [i])


def test_health_endpoints(server):
    assert get(server.http_port, "/v2/health/live")[0] == 200
    assert get(server.http_port, "/v2/health/ready")[0] == 200
    assert get(server.http_port, "/v2/models/jet_tagger/ready")[0] == 200
    assert get(server.http_port, "/v2/models/jet_tagger/versions/1/ready")[0] == 200
    assert get(server.http_port, "/v2/models/jet_tagger/versions/9/ready")[0] == 503
    assert get(server.http_port, "/v2/models/nope/ready")[0] == 503
    assert get(server.http_port, "/v2/nothing")[0] == 404


def metric(text, name, model):
    m = re.search(rf'^{name}{{model="{model}",version="1"}} (\d+)$', text, re.M)
    assert m, f"{name} for {model} missing in:\n{text}"
    return int(m.group(1))


def test_metrics_use_triton_names(server):
    before = get(server.metrics_port, "/metrics")[1]
    infer_jet(server, 4)
    status, text = get(server.metrics_port, "/metrics")
    assert status == 200
    for name in ("nv_inference_request_success", "nv_inference_request_failure",
                 "nv_inference_count", "nv_inference_exec_count",
                 "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
                 "nv_inference_compute_input_duration_us",
                 "nv_inference_compute_infer_duration_us",
                 "nv_inference_compute_output_duration_us",
                 "nv_inference_pending_request_count", "hlt_queue_depth"):
        assert f"# TYPE {name} " in text, name
        metric(text, name, "jet_tagger")
        metric(text, name, "facile")
    assert metric(text, "nv_inference_request_success", "jet_tagger") - \
        metric(before, "nv_inference_request_success", "jet_tagger") == 4
    assert metric(text, "nv_inference_count", "jet_tagger") - \
        metric(before, "nv_inference_count", "jet_tagger") == 12
    assert metric(text, "nv_inference_compute_infer_duration_us", "jet_tagger") > 0
    assert "# TYPE hlt_batch_size histogram" in text
    assert re.search(r'^hlt_batch_size_bucket{model="jet_tagger",version="1",le="4"} (\d+)$',
                     text, re.M)
    assert re.search(r'^hlt_batch_size_count{model="jet_tagger",version="1"} 4$', text, re.M)
    assert get(server.metrics_port, "/other")[0] == 404


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus not installed")
def test_real_prometheus_scrapes_metrics(server, tmp_path):
    infer_jet(server, 5)
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: hltinfer\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.metrics_port}']}}]\n")
    prom = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def query(expr):
            url = (f"http://127.0.0.1:{port}/api/v1/query?query=" +
                   urllib.parse.quote(expr))
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.loads(r.read())
            assert body["status"] == "success", body
            return body["data"]["result"]

        deadline = time.monotonic() + 90
        result = []
        while time.monotonic() < deadline and prom.poll() is None:
            try:
                result = query('nv_inference_request_success{model="jet_tagger"}')
                if result and float(result[0]["value"][1]) == 5:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)  # polling an external process: bounded by the deadline above
        assert result, "Prometheus never scraped the series"
        assert result[0]["metric"]["job"] == "hltinfer"
        assert result[0]["metric"]["version"] == "1"
        assert float(result[0]["value"][1]) == 5
        # the shape of SuperSONIC's autoscaling query: average queue time per request
        avg = query("sum by (model) (nv_inference_queue_duration_us) / "
                    "sum by (model) (nv_inference_request_success)")
        assert {r["metric"]["model"] for r in avg} >= {"jet_tagger"}
        hist = query('histogram_quantile(0.5, sum by (le) '
                     '(hlt_batch_size_bucket{model="jet_tagger"}))')
        assert float(hist[0]["value"][1]) > 0
    finally:
        prom.terminate()
        prom.wait(30)
