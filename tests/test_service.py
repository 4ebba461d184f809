"""The Open Inference Protocol client (physical/service.py) against real servers on 127.0.0.1:
KServe's ModelServer serving the default model (tests/oip_runtime.py, one process per module),
and a tiny http.server for the failures a real deployment shows (500, timeout, bad JSON, 429)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import make_fake_run, textured_image
from oip_runtime import SUB10
from physical.cli import main
from physical.errors import PhysicalError
from physical.workspace import read_json

HERE = Path(__file__).resolve().parent
TOKEN = "s3cret-token-for-tests"
SIZE = 224
IDS = ("img0", "img1", "img2")


# ----------------------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def kserve_url(tmp_path_factory):
    """KServe's ModelServer (a subprocess) serving lite0 / lite0-fp32 / lite0-fp255 / lite0-sub10 / private."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="2")
    log_path = tmp_path_factory.mktemp("oip") / "server.log"
    log = open(log_path, "w")   # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen([sys.executable, str(HERE / "oip_runtime.py"), "--port", str(port), "--token", TOKEN],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the KServe test server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the KServe test server did not start within 180 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Bad(BaseHTTPRequestHandler):
    """Models whose metadata is fine but whose inference fails the way servers do."""

    hits: dict[str, int] = {}
    auth: dict[str, str | None] = {}
    META = {"platform": "test_platform", "versions": ["3"],
            "inputs": [{"name": "x", "datatype": "UINT8", "shape": [-1, SIZE, SIZE, 3]}],
            "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 1000]}]}

    def log_message(self, *args):
        pass

    def _send(self, code, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _name(self):
        parts = self.path.strip("/").split("/")
        return parts[2] if len(parts) > 2 and parts[:2] == ["v2", "models"] else ""

    def do_GET(self):
        name = self._name()
        if not name:
            return self._send(404, {"error": "not found"})
        Bad.auth[name] = self.headers.get("Authorization")
        if name == "oddmeta":
            return self._send(200, {"name": name, "inputs": [{"name": "x", "datatype": "UINT8", "shape": "224x224"}]})
        self._send(200, {"name": name, **self.META})

    def do_POST(self):
        name = self._name()
        n = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"][0]["shape"][0]
        Bad.hits[name] = Bad.hits.get(name, 0) + 1
        Bad.auth[name] = self.headers.get("Authorization")
        if name == "boom":
            return self._send(500, {"error": "CUDA out of memory (test)"})
        if name == "slow":
            time.sleep(1.5)
        if name == "garbled":
            return self._send(200, b'{"outputs": [{"name": "scores", "data": [0.1, ')
        if name == "flaky" and Bad.hits[name] == 1:
            return self._send(503, {"error": "warming up"})
        if name == "flaky" and Bad.hits[name] == 2:
            return self._send(429, {"error": "slow down"}, headers=[("Retry-After", "0")])
        logits = np.zeros((n, 1000))
        logits[:, 7] = 5.0
        self._send(200, {"model_name": name, "model_version": "3",
                         "outputs": [{"name": "scores", "shape": [n, 1000], "datatype": "FP32",
                                      "data": logits.ravel().tolist()}]})


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # a client that timed out has closed its socket: the late answer's BrokenPipeError is expected


@pytest.fixture(scope="module")
def bad_url():
    server = QuietServer(("127.0.0.1", 0), Bad)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------------------- a run
@pytest.fixture(scope="module")
def labels(default_model):
    """Labels = the local model's clean top-1, so clean accuracy is 100 % locally."""
    from physical.models import predict

    clean = np.stack([textured_image(SIZE, n) for n in range(len(IDS))])
    return [int(t[0]) for t in predict(default_model, clean)[0]]


@pytest.fixture
def ws(tmp_path, labels, cached_model):
    return make_fake_run(tmp_path, ids=IDS, size=SIZE, labels=labels)


def invoke(ws, *args, env=None):
    return CliRunner().invoke(main, ["-q", "-w", str(ws.root), *args], env=env)


def pngs(ws, run="t"):
    m = read_json(ws.manifest_path(run))
    from physical.quantize import read_png

    return np.stack([read_png(ws.printouts(run) / rec["file"]) for img in m["images"] for rec in img["variants"].values()])


def _numbers(row):
    return {k: v for k, v in row.items() if k != "model"}


# ----------------------------------------------------------------------------- specs
def test_spec_parsing_and_credentials_stripped():
    from physical.service import clean_spec, parse_spec

    ep = parse_spec("oip:https://bob:pw@gw.example:8443/serving/v2/models/resnet/versions/2")
    assert (ep.origin, ep.prefix, ep.name, ep.version, ep.auth) == ("https://gw.example:8443", "/serving", "resnet",
                                                                    "2", ("bob", "pw"))
    assert ep.spec == "oip:https://gw.example:8443/serving/v2/models/resnet/versions/2"
    assert clean_spec("oip:http://u:p@h:1/v2/models/m") == "oip:http://h:1/v2/models/m"
    for bad in ("oip:ftp://h/v2/models/m", "oip:http://h/models/m", "oip:http:///v2/models/m",
                "oip:http://u:p@h/v1/models/m:predict", "oip:http://h/v2/models/m?x=1"):
        with pytest.raises(PhysicalError) as e:
            parse_spec(bad)
        assert "p@" not in str(e.value)


def test_craft_refuses_a_service(tmp_path):
    r = CliRunner().invoke(main, ["-q", "-w", str(tmp_path), "craft", "--run", "x",
                                  "--model", "oip:http://u:pw@127.0.0.1:9/v2/models/m"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [r.output.strip()]
    assert "can only evaluate" in r.output and "pw" not in r.output
    assert not (tmp_path / "printouts" / "x" / "manifest.json").exists()


# ----------------------------------------------------------------------------- the real server
@pytest.mark.parametrize("name, options, layout, datatype, scores", [
    ("lite0", {}, "NHWC", "UINT8", "logits"),
    ("lite0-fp32", {}, "NCHW", "FP32", "probabilities"),
    ("lite0-fp255", {"scale": 255.0}, "NCHW", "FP32", "logits"),
])
def test_layouts_predict_like_the_local_model(kserve_url, ws, default_model, name, options, layout, datatype, scores):
    from physical.models import predict
    from physical.service import ServiceOptions, connect

    model = connect(f"oip:{kserve_url}/v2/models/{name}", ServiceOptions(batch=2, **options))
    assert (model.layout, model.datatype, model.size, model.num_classes) == (layout, datatype, (SIZE, SIZE), 1000)
    x = pngs(ws)
    top, prob = predict(model, x, batch_size=len(x))
    want_top, want_prob = predict(default_model, x)
    assert model.scores == scores
    assert torch.equal(top, want_top)
    np.testing.assert_allclose(prob.numpy(), want_prob.numpy(), atol=2e-5)
    info = model.service
    assert info["url"] == f"{kserve_url}/v2/models/{name}" and info["model"] == name
    assert info["input"]["layout"] == layout and info["output"]["classes"] == 1000
    assert info["server"]["name"] == "kserve"


def test_other_sizes_are_resized_like_the_local_model(kserve_url, default_model):
    """64 px images: the client resizes to the metadata's 224 × 224 as the local wrapper does."""
    from physical.models import predict
    from physical.service import connect

    x = np.stack([textured_image(64, n) for n in range(3)])
    top, prob = predict(connect(f"oip:{kserve_url}/v2/models/lite0-fp32"), x)
    want_top, want_prob = predict(default_model, x)
    assert torch.equal(top, want_top)
    np.testing.assert_allclose(prob.numpy(), want_prob.numpy(), atol=2e-5)


def test_service_classes_map_another_label_set_to_imagenet(kserve_url, default_model, tmp_path):
    from physical.models import imagenet_classes
    from physical.service import ServiceOptions, connect

    wnids, names = imagenet_classes()
    # the 10 outputs written three ways: ImageNet index, WordNet id, class name
    lines = [str(c) if i % 3 == 0 else (wnids[c] if i % 3 == 1 else names[c]) for i, c in enumerate(SUB10)]
    assert names[SUB10[2]] == lines[2]
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(lines) + "\n")
    model = connect(f"oip:{kserve_url}/v2/models/lite0-sub10", ServiceOptions(classes=str(classes)))
    assert model.num_classes == 1000 and model.n_outputs == 10
    x = np.stack([textured_image(SIZE, n) for n in range(4)])
    top, prob = model.predict(x, k=5)
    with torch.inference_mode():
        local = default_model(torch.from_numpy(x).permute(0, 3, 1, 2).float())[:, SUB10].softmax(1)
    want_p, want_i = local.topk(5, dim=1)
    assert torch.equal(top, torch.tensor(SUB10)[want_i])
    np.testing.assert_allclose(prob.numpy(), want_p.numpy(), atol=2e-5)
    classes.write_text("\n".join(lines[:9]) + "\nnot a class\n")
    with pytest.raises(PhysicalError, match="classes.txt:10"):
        connect(f"oip:{kserve_url}/v2/models/lite0-sub10", ServiceOptions(classes=str(classes)))


def test_evaluate_through_the_service_equals_local(kserve_url, ws):
    spec = f"oip:{kserve_url}/v2/models/lite0"
    r = invoke(ws, "evaluate", "--run", "t", "--model", "default", "--model", spec, "--service-batch", "2")
    assert r.exit_code == 0, r.output
    doc = read_json(ws.reports("t") / "metrics.json")
    local = [row for row in doc["rows"] if row["model"] == "default"]
    remote = [row for row in doc["rows"] if row["model"] == spec]
    assert local and len(local) == len(remote)
    assert [_numbers(a) for a in local] == [_numbers(b) for b in remote]
    assert local[0]["clean_top1"] == 1.0
    info = {m["spec"]: m for m in doc["run"]["models"]}[spec]
    assert info["service"]["url"] == f"{kserve_url}/v2/models/lite0"
    assert info["service"]["model"] == "lite0" and info["service"]["input"]["datatype"] == "UINT8"
    assert info["weights_sha256"] is None and info["png_predictions"] == "computed"
    assert doc["transfer"]["models"] == ["default", spec]
    from physical.commands.evaluate import transfer_table
    from physical.evaluate import summary_table

    assert "oip:lite0" in transfer_table(doc["transfer"]) and "oip:lite0 " in summary_table(doc)
    # the report names the service it judged by: URL (no credentials), model, server
    from physical.report import build_report

    html = build_report(ws, "t").read_text(encoding="utf-8")
    assert f"<code>{kserve_url}/v2/models/lite0</code> · model <b>lite0</b>" in html
    assert "(UINT8 input)" in html


def test_transforms_through_the_service(kserve_url, ws):
    spec = f"oip:{kserve_url}/v2/models/lite0"      # UINT8: the same bytes reach the model, rows are equal
    r = invoke(ws, "transforms", "--run", "t", "--kinds", "jpeg", "--model", "default", "--model", spec)
    assert r.exit_code == 0, r.output
    doc = read_json(ws.reports("t") / "transforms.json")       # transforms' own file
    rows = doc["rows"]
    assert {m["spec"] for m in doc["run"]["models"]} == {"default", spec}
    assert next(m for m in doc["run"]["models"] if m["spec"] == spec)["service"]["model"] == "lite0"
    local = [_numbers(x) for x in rows if x["model"] == "default"]
    remote = [_numbers(x) for x in rows if x["model"] == spec]
    assert local and local == remote


def test_credentials_in_the_url_are_used_but_never_written(kserve_url, ws):
    spec = f"oip:{kserve_url.replace('http://', 'http://alice:hunter2@')}/v2/models/lite0"
    r = invoke(ws, "evaluate", "--run", "t", "--model", spec)
    assert r.exit_code == 0, r.output
    out = ws.reports("t")
    for f in ("metrics.json", "metrics.csv", "predictions.csv"):
        text = (out / f).read_text()
        assert "hunter2" not in text and "alice" not in text
        assert f"oip:{kserve_url}/v2/models/lite0" in text


# ----------------------------------------------------------------------------- failures: one line, nothing written
@pytest.fixture(scope="module")
def evaluated_once(tmp_path_factory, labels, default_model):
    """A run with an earlier evaluation whose outputs must survive every failed one (so one per module)."""
    import physical.models as pm

    ws = make_fake_run(tmp_path_factory.mktemp("evaluated"), ids=IDS, size=SIZE, labels=labels)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pm, "load_model", lambda *a, **k: default_model)
        r = invoke(ws, "evaluate", "--run", "t", "--model", "default")
    assert r.exit_code == 0, r.output
    out = ws.reports("t")
    return ws, {f: (out / f).read_bytes() for f in ("metrics.json", "metrics.csv", "predictions.csv")}


@pytest.fixture
def evaluated(evaluated_once, cached_model):
    return evaluated_once


def fails(evaluated, *args, env=None) -> str:
    ws, before = evaluated
    r = invoke(ws, "evaluate", "--run", "t", "--model", "default", *args, env=env)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    assert {f: (ws.reports("t") / f).read_bytes() for f in before} == before
    return lines[0]


def test_wrong_model_name(kserve_url, evaluated):
    line = fails(evaluated, "--model", f"oip:{kserve_url}/v2/models/nope")
    assert "HTTP 404" in line and "Model with name nope does not exist" in line


def test_version_the_server_does_not_support_is_not_retried(kserve_url, evaluated):
    line = fails(evaluated, "--model", f"oip:{kserve_url}/v2/models/lite0/versions/2")
    assert "HTTP 501" in line and "versioning not supported" in line and "tries" not in line


def test_metadata_that_is_not_oip(bad_url, evaluated):
    line = fails(evaluated, "--model", f"oip:{bad_url}/v2/models/oddmeta")
    assert "not Open Inference Protocol model metadata" in line


def test_missing_or_wrong_token(kserve_url, evaluated, monkeypatch):
    monkeypatch.delenv("PHYSICAL_OIP_TOKEN", raising=False)
    spec = f"oip:{kserve_url}/v2/models/private"
    line = fails(evaluated, "--model", spec)
    assert "HTTP 401" in line and "bearer token is required" in line and "PHYSICAL_OIP_TOKEN" in line
    line = fails(evaluated, "--model", spec, env={"PHYSICAL_OIP_TOKEN": "wrong"})
    assert "HTTP 401" in line and "wrong" not in line

def test_token_is_sent_never_shown_or_written(kserve_url, ws):
    r = invoke(ws, "-v", "evaluate", "--run", "t", "--model", f"oip:{kserve_url}/v2/models/private",
               env={"PHYSICAL_OIP_TOKEN": TOKEN})
    assert r.exit_code == 0, r.output
    assert TOKEN not in r.output
    for f in ("metrics.json", "metrics.csv", "predictions.csv"):
        assert TOKEN not in (ws.reports("t") / f).read_text()
    assert read_json(ws.reports("t") / "metrics.json")["run"]["models"][0]["service"]["token"] is True


def test_server_error_is_retried_then_one_line(bad_url, evaluated):
    Bad.hits.clear()
    line = fails(evaluated, "--model", f"oip:{bad_url}/v2/models/boom", "--service-retries", "2")
    assert "HTTP 500: CUDA out of memory (test)" in line and "gave up after 3 tries" in line
    assert Bad.hits["boom"] == 3


def test_timeout(bad_url, evaluated):
    line = fails(evaluated, "--model", f"oip:{bad_url}/v2/models/slow", "--service-timeout", "0.3",
                 "--service-retries", "0")
    assert "no answer within 0.3 s" in line


def test_malformed_json(bad_url, evaluated):
    line = fails(evaluated, "--model", f"oip:{bad_url}/v2/models/garbled")
    assert "not valid JSON" in line


def test_unreachable_server(evaluated):
    line = fails(evaluated, "--model", f"oip:http://127.0.0.1:{_free_port()}/v2/models/m", "--service-retries", "1")
    assert "cannot reach the server" in line and "gave up after 2 tries" in line


def test_503_and_429_are_retried_and_the_token_is_a_bearer_header(bad_url, monkeypatch):
    from physical.service import ServiceOptions, connect

    Bad.hits.clear()
    monkeypatch.setenv("PHYSICAL_OIP_TOKEN", TOKEN)
    model = connect(f"oip:{bad_url}/v2/models/flaky/versions/3", ServiceOptions(backoff=0.01))
    top, prob = model.predict(np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert Bad.hits["flaky"] == 3 and top[:, 0].tolist() == [7, 7]
    assert Bad.auth["flaky"] == f"Bearer {TOKEN}"
    info = model.service
    assert (info["platform"], info["version"], info["token"]) == ("test_platform", "3", True)
    assert TOKEN not in json.dumps(info)
