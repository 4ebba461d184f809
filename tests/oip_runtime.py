"""A real Open Inference Protocol (KServe v2 REST) server for the tests and the benchmark:
KServe's Python `ModelServer` data plane serving the default model (EfficientNet-Lite0) under
several names, one per request layout the client must handle.

    python tests/oip_runtime.py --port 8080 [--token SECRET]

Models (all the same network, so a prediction through any of them equals the local one):
  lite0        UINT8 NHWC [-1, 224, 224, 3]           → logits [-1, 1000]
  lite0-fp32   FP32 NCHW  [-1, 3, 224, 224] in 0–1     → probabilities [-1, 1000]
  lite0-fp255  FP32 NCHW  [-1, 3, 224, 224] in 0–255   → logits [-1, 1000]
  lite0-sub10  UINT8 NHWC                               → logits of 10 ImageNet classes (SUB10 below)
  private      as lite0, but every request needs `Authorization: Bearer <--token>` (a gateway's rule)

KServe's RESTServer listens on 0.0.0.0; this runtime binds 127.0.0.1 (tests never open a port
to the network).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

# ImageNet classes of the 10-class model (its output order): tench, goldfinish, … any fixed subset.
SUB10 = [0, 11, 94, 130, 207, 281, 340, 409, 530, 980]


def build_models(classifier):
    import numpy as np
    import torch
    from kserve import Model
    from kserve.protocol.infer_type import InferOutput, InferResponse

    size = classifier.input_size

    class LiteService(Model):
        """One layout of the classifier behind the v2 protocol."""

        def __init__(self, name: str, layout: str, scale: float = 255.0, probabilities: bool = False,
                     classes: list[int] | None = None):
            super().__init__(name)
            self.layout, self.scale, self.probabilities, self.classes = layout, scale, probabilities, classes
            self.ready = True

        def get_input_types(self):
            if self.layout == "nhwc":
                return [{"name": "images", "datatype": "UINT8", "shape": [-1, size, size, 3]}]
            return [{"name": "input", "datatype": "FP32", "shape": [-1, 3, size, size]}]

        def get_output_types(self):
            n = len(self.classes) if self.classes else classifier.num_classes
            return [{"name": "probabilities" if self.probabilities else "logits", "datatype": "FP32",
                     "shape": [-1, n]}]

        def _run(self, x: np.ndarray) -> np.ndarray:
            if self.layout == "nhwc":
                t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
            else:
                t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) * (255.0 / self.scale)
            with torch.inference_mode():
                out = classifier(t)
                if self.classes:
                    out = out[:, self.classes]
                if self.probabilities:
                    out = out.softmax(dim=1)
            return out.numpy().astype(np.float32)

        async def predict(self, payload, headers=None, response_headers=None):
            x = payload.inputs[0].as_numpy()
            # torch off the event loop, so health checks still answer during a long batch
            out = await asyncio.get_running_loop().run_in_executor(None, self._run, x)
            name = self.get_output_types()[0]["name"]
            return InferResponse(response_id=payload.id or "", model_name=self.name,
                                 infer_outputs=[InferOutput(name, list(out.shape), "FP32", out.ravel().tolist())])

    return [LiteService("lite0", "nhwc"), LiteService("lite0-fp32", "nchw", scale=1.0, probabilities=True),
            LiteService("lite0-fp255", "nchw", scale=255.0), LiteService("lite0-sub10", "nhwc", classes=SUB10),
            LiteService("private", "nhwc")]


def serve(port: int, token: str | None = None, classifier=None) -> None:
    """Serve until killed (blocking)."""
    from fastapi.responses import JSONResponse
    from kserve.model_server import ModelServer, app
    from kserve.protocol.rest.server import RESTServer

    if classifier is None:
        from physical.models import load_model

        classifier = load_model("default", "cpu")
    server = ModelServer(http_port=port, enable_grpc=False, workers=1)
    for model in build_models(classifier):
        server.register_model(model)

    @app.middleware("http")
    async def bearer(request, call_next):
        if request.url.path.startswith("/v2/models/private"):
            if request.headers.get("authorization") != f"Bearer {token}":
                return JSONResponse({"error": "unauthorized: a valid bearer token is required"}, status_code=401)
        return await call_next(request)

    rest = RESTServer("kserve.model_server:app", server.dataplane, server.model_repository_extension, port)
    rest.config.host = "127.0.0.1"
    asyncio.run(rest.start())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", default=os.environ.get("OIP_RUNTIME_TOKEN"))
    a = p.parse_args(argv)
    serve(a.port, a.token)


if __name__ == "__main__":
    sys.exit(main())
