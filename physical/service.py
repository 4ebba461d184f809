"""A model behind a service: an Open Inference Protocol client (KServe v2 REST, spoken by KServe,
NVIDIA Triton, Seldon MLServer and TorchServe's KServe mode).

Spec: `oip:http[s]://HOST[:PORT][/PREFIX]/v2/models/NAME[/versions/V]`. Such a model can stand
wherever a model is only *evaluated* (evaluate, transforms); crafting needs gradients and refuses it.

Convention: images reach `ServiceModel.predict` as uint8 N×H×W×3 (or float N×3×H×W in [0, 255]),
like every local model. The model's metadata (`GET …/v2/models/NAME`) decides the request: one
image input, UINT8 `[-1, H, W, 3]` (NHWC) or FP32 `[-1, 3, H, W]` (NCHW; values in 0–1 or 0–255,
`ServiceOptions.scale`); images of another size are resized to H×W as the local wrapper does
(bilinear, antialiased). The output row is class scores: probabilities are used as they are,
anything else goes through a softmax. `--service-classes FILE` maps the service's classes to
ImageNet's, so its predictions are scored against the run's ImageNet labels.

Secrets: the bearer token comes from `PHYSICAL_OIP_TOKEN` only; `user:password@` in a URL is
sent as basic auth. Neither is logged, put in an error message or written: every URL recorded
is stripped of them.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from physical.errors import PhysicalError

log = logging.getLogger(__name__)
PREFIX = "oip:"
TOKEN_ENV = "PHYSICAL_OIP_TOKEN"
SPEC_HELP = "oip:http://HOST:PORT/v2/models/NAME[/versions/V]"
_PATH = re.compile(r"^(?P<prefix>.*?)/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$")
FLOAT_TYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


@dataclass(frozen=True)
class ServiceOptions:
    """How to talk to a service (the `--service-*` options)."""

    scale: float = 1.0            # FP32 inputs: 1.0 → values in 0–1, 255.0 → 0–255
    classes: str | None = None    # file: the service's classes in output order → ImageNet
    batch: int = 8                # images per request
    concurrency: int = 4          # requests in flight at once
    timeout: float = 30.0         # seconds per request
    retries: int = 3              # extra tries on connection errors, timeouts, 429 and 5xx
    backoff: float = 0.5          # seconds before the first retry, doubled each time

    def check(self) -> "ServiceOptions":
        if self.scale not in (1.0, 255.0):
            raise PhysicalError(f"--service-scale must be 0-1 or 0-255, got {self.scale:g}")
        for name, value, low in (("batch", self.batch, 1), ("concurrency", self.concurrency, 1),
                                 ("retries", self.retries, 0)):
            if int(value) != value or value < low:
                raise PhysicalError(f"--service-{name} must be a whole number ≥ {low}, got {value}")
        if not self.timeout > 0:
            raise PhysicalError(f"--service-timeout must be positive, got {self.timeout:g}")
        return self


@dataclass(frozen=True)
class Endpoint:
    """A parsed spec. `auth` (user, password) never leaves this object."""

    origin: str                    # scheme://host[:port], no user:password
    prefix: str                    # path before /v2 (a gateway's route), "" mostly
    name: str
    version: str | None
    auth: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        """The model's metadata URL, without credentials: what is recorded."""
        return f"{self.origin}{self.prefix}/v2/models/{self.name}" + (f"/versions/{self.version}" if self.version else "")

    @property
    def spec(self) -> str:
        return PREFIX + self.url


def is_service(spec: str | None) -> bool:
    return str(spec or "").strip().startswith(PREFIX)


def parse_spec(spec: str) -> Endpoint:
    """`oip:URL` → Endpoint; a malformed spec is a PhysicalError that names the expected form."""
    raw = str(spec).strip()[len(PREFIX):]
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        parts, port = None, None
    shown = clean_spec(spec)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PhysicalError(f"model spec {shown!r}: expected {SPEC_HELP} (http or https)")
    m = _PATH.match(parts.path)
    if m is None or parts.query or parts.fragment:
        raise PhysicalError(f"model spec {shown!r}: the URL must end in /v2/models/NAME or "
                            f"/v2/models/NAME/versions/V ({SPEC_HELP})")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    auth = (parts.username or "", parts.password or "") if parts.username or parts.password else None
    return Endpoint(origin, m["prefix"], m["name"], m["version"], auth)


def display_name(spec: str) -> str:
    """A short name for terminal tables: `oip:NAME[/vV]` for a service (its URL is in metrics.json)."""
    if not is_service(spec):
        return spec
    m = _PATH.match(urlsplit(clean_spec(spec)[len(PREFIX):]).path)
    return spec if m is None else PREFIX + m["name"] + (f"/v{m['version']}" if m["version"] else "")


def clean_spec(spec: str) -> str:
    """The spec without user:password (for messages and records), even when malformed."""
    s = str(spec).strip()
    if not s.startswith(PREFIX):
        return s
    try:
        parts = urlsplit(s[len(PREFIX):])
    except ValueError:
        return PREFIX + re.sub(r"//[^/@]*@", "//", s[len(PREFIX):])
    netloc = parts.netloc.rpartition("@")[2]
    return PREFIX + urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ----------------------------------------------------------------------------- session
# What the CLI configured for this call (options, and credentials by clean spec): a context
# variable, so nothing outlives the command and the evaluation code never sees a password.
_SESSION: ContextVar[tuple[ServiceOptions, dict[str, tuple[str, str]]] | None] = ContextVar("oip_session", default=None)


@contextmanager
def session(specs: Sequence[str] | None, options: ServiceOptions | None = None) -> Iterator[list[str] | None]:
    """Validate the `oip:` specs among `specs` and yield them without credentials, the other
    specs unchanged; inside the block `connect` uses `options` and those credentials."""
    options = (options or ServiceOptions()).check()
    out, auth = None, {}
    if specs is not None:
        out = []
        for spec in specs:
            if is_service(spec):
                ep = parse_spec(spec)
                if ep.auth:
                    auth[ep.spec] = ep.auth
                spec = ep.spec
            out.append(spec)
    token = _SESSION.set((options, auth))
    try:
        yield out
    finally:
        _SESSION.reset(token)


def connect(spec: str, options: ServiceOptions | None = None) -> "ServiceModel":
    """Read the model's metadata and return a ServiceModel (PhysicalError when unusable)."""
    ep = parse_spec(spec)
    current = _SESSION.get()
    if ep.auth:
        # the spec itself would be written into metrics.json: keep passwords out of it
        raise PhysicalError(f"{ep.spec}: credentials in the URL are only taken through the command line "
                            f"(physical.service.session) or, as a token, from {TOKEN_ENV}")
    if current is not None:
        options = options or current[0]
        ep = replace(ep, auth=current[1].get(ep.spec))
    return ServiceModel(ep, (options or ServiceOptions()).check())


# ----------------------------------------------------------------------------- classes
def read_class_map(path: str) -> np.ndarray:
    """The service's classes in output order, one per line (ImageNet index, WordNet id or class
    name; `-` for a class ImageNet lacks) → ImageNet index per output (-1: none)."""
    from physical.models import imagenet_classes

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PhysicalError(f"cannot read --service-classes file {path}: {exc.strerror or exc}") from None
    wnids, names = imagenet_classes()
    by_wnid = {w.lower(): i for i, w in enumerate(wnids)}
    by_name: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_name.setdefault(n.lower(), []).append(i)
    out = []
    for lineno, line in enumerate(lines, 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        low = key.lower()
        if key == "-":
            out.append(-1)
        elif key.isdigit() and int(key) < len(wnids):
            out.append(int(key))
        elif low in by_wnid:
            out.append(by_wnid[low])
        elif len(by_name.get(low, [])) == 1:
            out.append(by_name[low][0])
        elif low in by_name:
            raise PhysicalError(f"{path}:{lineno}: {key!r} names several ImageNet classes "
                                f"({', '.join(map(str, by_name[low]))}): give the index or the WordNet id")
        else:
            raise PhysicalError(f"{path}:{lineno}: {key!r} is no ImageNet index, WordNet id or class name "
                                "(`-` marks a class ImageNet does not have)")
    if not out:
        raise PhysicalError(f"--service-classes file {path} lists no classes")
    return np.array(out, dtype=np.int64)


# ----------------------------------------------------------------------------- client
def _server_message(response) -> str:
    """The server's own error text, on one line (v2 errors are {"error": "…"})."""
    text = response.text
    try:
        body = response.json()
        if isinstance(body, dict):
            text = str(body.get("error") or body.get("detail") or body.get("message") or text)
    except ValueError:
        pass
    text = " ".join(text.split())
    return (text[:300] + "…") if len(text) > 300 else (text or response.reason_phrase or "no message")


class ServiceModel:
    """A classifier behind an OIP endpoint, with the attributes evaluation reads from a local
    model (spec, arch, weights_sha256, num_classes) and `predict(images, k)` → (top-k ids, probs)."""

    remote = True

    def __init__(self, endpoint: Endpoint, options: ServiceOptions):
        import httpx

        self.endpoint, self.options = endpoint, options
        self.spec, self.url = endpoint.spec, endpoint.url
        headers = {"Accept": "application/json"}
        token = os.environ.get(TOKEN_ENV)
        if token:
            headers["Authorization"] = f"Bearer {token.strip()}"
        self._client = httpx.Client(headers=headers, timeout=options.timeout,
                                    auth=httpx.BasicAuth(*endpoint.auth) if endpoint.auth else None,
                                    limits=httpx.Limits(max_connections=options.concurrency))
        weakref.finalize(self, self._client.close)
        self._had_token = bool(token)
        self.scores = None                       # "logits" or "probabilities", once seen
        self.model_version = endpoint.version
        self._read_metadata()
        self.batch_hint = self.max_batch * options.concurrency   # predict_items: images per call

    # -- metadata
    def _read_metadata(self) -> None:
        meta = self._json(self._request("GET", self.url), "metadata")
        try:
            self._parse_metadata(meta)
        except (AttributeError, KeyError, TypeError, ValueError):
            raise PhysicalError(f"{self.url}: the answer is not Open Inference Protocol model metadata "
                                "(inputs/outputs with name, datatype, shape)") from None
        self.server = self._server_metadata()
        if self._had_token and self.endpoint.origin.startswith("http://") and not _is_loopback(self.endpoint.origin):
            log.warning("%s is plain http: the bearer token travels unencrypted", self.endpoint.origin)

    def _parse_metadata(self, meta: dict) -> None:
        inputs, outputs = meta.get("inputs") or [], meta.get("outputs") or []
        if len(inputs) != 1:
            raise PhysicalError(f"{self.url}: the model has {len(inputs)} inputs; only models with one image input "
                                "can be evaluated")
        inp = inputs[0]
        self.input_name, self.datatype = str(inp.get("name", "")), str(inp.get("datatype", "")).upper()
        shape = [int(d) for d in inp.get("shape") or []]
        if self.datatype != "UINT8" and self.datatype not in FLOAT_TYPES:
            raise PhysicalError(f"{self.url}: input {self.input_name!r} is {self.datatype or 'untyped'}; "
                                "the client sends UINT8 or FP32 images")
        if len(shape) == 4 and shape[3] == 3:
            self.layout, (n, h, w) = "NHWC", (shape[0], shape[1], shape[2])
        elif len(shape) == 4 and shape[1] == 3:
            self.layout, (n, h, w) = "NCHW", (shape[0], shape[2], shape[3])
        else:
            raise PhysicalError(f"{self.url}: input shape {shape} is not an RGB image batch "
                                "([-1, H, W, 3] or [-1, 3, H, W])")
        self.input_shape = shape
        self.size = None if h <= 0 or w <= 0 else (h, w)      # None: any size is taken as it is
        self.max_batch = self.options.batch if n <= 0 else max(1, min(self.options.batch, n))
        two_d = [o for o in outputs if len(o.get("shape") or []) == 2]
        out = (two_d or outputs or [{}])[0]
        self.output_name = out.get("name")
        self.request_output = len(outputs) > 1 and bool(self.output_name)
        n_out = int((out.get("shape") or [0, -1])[-1]) if out else -1
        self.platform = meta.get("platform") or None
        self.model_name = str(meta.get("name") or self.endpoint.name)
        versions = meta.get("versions")
        if self.model_version is None and isinstance(versions, list) and len(versions) == 1:
            self.model_version = str(versions[0])
        self.class_map = read_class_map(self.options.classes) if self.options.classes else None
        if n_out <= 0:      # no class count in the metadata: ask one image
            n_out = self._infer(np.zeros((1, 3, *(self.size or (32, 32))), dtype=np.float32)).shape[1]
        self.n_outputs = n_out
        if self.class_map is not None and len(self.class_map) != n_out:
            raise PhysicalError(f"--service-classes {self.options.classes} lists {len(self.class_map)} classes, "
                                f"the service's output has {n_out}")
        self.num_classes = 1000 if self.class_map is not None else n_out

    def _server_metadata(self) -> dict | None:
        """`GET /v2` (server name and version), when the server answers it; optional."""
        try:
            r = self._client.get(f"{self.endpoint.origin}{self.endpoint.prefix}/v2", timeout=min(5.0, self.options.timeout))
            body = r.json() if r.status_code == 200 else None
        except Exception:  # optional extra: any failure just leaves it out
            return None
        if not isinstance(body, dict):
            return None
        return {k: body.get(k) for k in ("name", "version") if body.get(k) is not None} or None

    # -- evaluation code reads these
    @property
    def arch(self) -> str:
        return f"oip:{self.platform}" if self.platform else "oip"

    weights_sha256 = None

    @property
    def service(self) -> dict:
        """The service's identity, for metrics.json's model info."""
        return {"url": self.url, "model": self.model_name, "version": self.model_version,
                "platform": self.platform, "server": self.server, "protocol": "open-inference-v2-rest",
                "input": {"name": self.input_name, "datatype": self.datatype, "shape": self.input_shape,
                          "layout": self.layout,
                          "scale": None if self.datatype == "UINT8" else f"0-{self.options.scale:g}"},
                "output": {"name": self.output_name, "classes": self.n_outputs, "scores": self.scores},
                "classes_file": self.options.classes, "token": self._had_token}

    # -- HTTP
    def _request(self, method: str, url: str, **kw):
        """One request with retries (connection errors, timeouts, 429, 5xx but 501/505; exponential
        backoff, or Retry-After). Another error is the server's answer: PhysicalError with its own
        message, no retry."""
        import httpx

        tries = self.options.retries + 1
        last = ""
        for attempt in range(tries):
            wait = self.options.backoff * 2 ** attempt
            try:
                r = self._client.request(method, url, **kw)
            except httpx.TimeoutException:
                last = f"no answer within {self.options.timeout:g} s"
            except httpx.TransportError as exc:
                last = f"cannot reach the server ({type(exc).__name__}: {' '.join(str(exc).split()) or 'no detail'})"
            else:
                if r.status_code == 429 or (r.status_code >= 500 and r.status_code not in (501, 505)):
                    last = f"HTTP {r.status_code}: {_server_message(r)}"
                    after = r.headers.get("retry-after", "")
                    if after.replace(".", "", 1).isdigit():
                        wait = min(float(after), 30.0)
                elif r.status_code >= 400:
                    hint = ""
                    if r.status_code in (401, 403):
                        hint = (f" (set {TOKEN_ENV} to the service's token)" if not self._had_token
                                else f" (check the token in {TOKEN_ENV})")
                    elif r.status_code == 404:
                        hint = " (check the model name and version in the URL)"
                    raise PhysicalError(f"{self.url}: HTTP {r.status_code}: {_server_message(r)}{hint}")
                else:
                    return r
            if attempt + 1 < tries:
                log.info("%s: %s; retrying in %.1f s", self.url, last, wait)
                time.sleep(wait)
        raise PhysicalError(f"{self.url}: {last} (gave up after {tries} tries)")

    def _json(self, response, what: str):
        try:
            return response.json()
        except ValueError:
            head = " ".join(response.text[:60].split())
            raise PhysicalError(f"{self.url}: the {what} response is not valid JSON (starts {head!r})") from None

    # -- inference
    def _body(self, x: np.ndarray) -> bytes:
        """x: float32 N×3×h×w in [0, 255] → the JSON request in the model's layout and scale."""
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            import torch
            import torch.nn.functional as F

            # the local wrapper's own resize (models.Classifier.forward)
            x = F.interpolate(torch.from_numpy(x), size=self.size, mode="bilinear", align_corners=False,
                              antialias=True).numpy()
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        levels = None
        if self.datatype == "UINT8":
            data = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        elif np.array_equal(x, np.rint(x)):          # 8-bit pixels, not resized: 256 possible values
            levels = np.clip(x, 0, 255).astype(np.uint8)
            data = levels
        else:
            data = (x * np.float32(self.options.scale / 255.0) if self.options.scale != 255.0 else x).astype(FLOAT_TYPES[self.datatype])
        tensor = {"name": self.input_name, "shape": list(data.shape), "datatype": self.datatype, "data": None}
        body = {"inputs": [tensor]}
        if self.request_output:
            body["outputs"] = [{"name": self.output_name}]
        if levels is None:
            tensor["data"] = data.ravel().tolist()
            return json.dumps(body, separators=(",", ":")).encode()
        # JSON floats of 8-bit levels from a table: half the bytes and time of json.dumps on floats
        head, tail = json.dumps(body, separators=(",", ":")).split('"data":null')
        table = _level_table(self.datatype, self.options.scale)
        return b"".join([head.encode(), b'"data":[', b",".join(table[levels.ravel()].tolist()), b"]", tail.encode()])

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """One POST …/infer: float N×3×h×w [0, 255] → raw scores N×C (float64)."""
        r = self._request("POST", f"{self.url}/infer", content=self._body(x),
                          headers={"Content-Type": "application/json"})
        body = self._json(r, "inference")
        outs = body.get("outputs") if isinstance(body, dict) else None
        if not outs or not isinstance(outs, list):
            raise PhysicalError(f"{self.url}: the inference response has no outputs")
        out = next((o for o in outs if isinstance(o, dict) and o.get("name") == self.output_name), outs[0])
        try:
            scores = np.asarray(out["data"], dtype=np.float64).reshape([int(d) for d in out["shape"]])
        except (KeyError, TypeError, ValueError):
            raise PhysicalError(f"{self.url}: output {out.get('name')!r} of the inference response is not a "
                                "tensor (data and shape disagree)") from None
        if scores.ndim != 2 or scores.shape[0] != len(x):
            raise PhysicalError(f"{self.url}: sent {len(x)} images, got an output of shape {list(scores.shape)} "
                                "(expected one row of class scores per image)")
        if isinstance(body, dict) and body.get("model_version") and self.model_version is None:
            self.model_version = str(body["model_version"])
        return scores

    def _probabilities(self, scores: np.ndarray):
        """Raw scores → float32 probabilities (a torch tensor; softmax as the local `predict` does)."""
        import torch

        if not np.isfinite(scores).all():
            raise PhysicalError(f"{self.url}: the service returned non-finite class scores")
        probs = bool(scores.min() >= 0 and scores.max() <= 1 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))
        kind = "probabilities" if probs else "logits"
        self.scores = kind if self.scores in (None, kind) else "mixed"      # recorded in metrics.json
        t = torch.from_numpy(scores.astype(np.float32))
        return t if probs else t.softmax(dim=1)

    def predict(self, images, batch_size: int | None = None, k: int = 5):
        """Top-k ImageNet (or service) class ids and probabilities, as `physical.models.predict`
        returns them: requests of `options.batch` images, `options.concurrency` in flight."""
        import torch

        if isinstance(images, np.ndarray):
            arr = images[None] if images.ndim == 3 else images
            x = np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32)
        else:
            x = images.detach().float().cpu().numpy()
        chunks = [x[s:s + self.max_batch] for s in range(0, len(x), self.max_batch)]
        if not chunks:
            return torch.zeros(0, k, dtype=torch.long), torch.zeros(0, k)
        pool = ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(chunks)))
        try:
            scores = list(pool.map(self._infer, chunks))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)   # a failed chunk stops the ones not yet sent
        p = self._probabilities(np.concatenate(scores))
        ids = None
        if self.class_map is not None:
            # sum each ImageNet class's share; classes ImageNet lacks pool into one "other" column (id -1)
            cols = torch.from_numpy(np.where(self.class_map >= 0, self.class_map, 1000))
            p = torch.zeros(len(p), 1001).index_add_(1, cols, p)
            ids = torch.cat([torch.arange(1000), torch.tensor([-1])])
        prob, top = p.topk(min(k, p.shape[1]), dim=1)
        return (top if ids is None else ids[top]), prob


@lru_cache(maxsize=8)
def _level_table(datatype: str, scale: float) -> np.ndarray:
    """JSON text of level k (0–255) as the service's float: the shortest decimal that a float64
    parse followed by a cast to `datatype` (what servers do) turns back into exactly k·scale/255."""
    ftype = FLOAT_TYPES[datatype]
    out = []
    for k in range(256):
        v = ftype(np.float32(k) * np.float32(scale / 255.0)) if scale != 255.0 else ftype(k)
        text = np.format_float_positional(v, unique=True, trim="0")   # "1.0", not "1": a float
        if ftype(float(text)) != v:           # never seen; the float64 text is always exact
            text = repr(float(v))
        out.append(text.encode())
    return np.array(out, dtype=object)


def _is_loopback(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
