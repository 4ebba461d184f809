"""`physical serve`: photos from a phone straight into a run, with feedback while shooting.

A small Starlette app served by uvicorn. The URL carries a random token (printed, and shown as
a QR code); the phone's page uploads each photo, the server stores it under
captures/<run>/photos/<sha256>.<jpg|png|heic> (original bytes, EXIF kept; the client's file name is
data in captures/<run>/serve.json, never a path) and queues it for ingest. Ingest runs in one
long-lived worker process (so the server stays responsive and the worker stays warm: cv2 and
the marker detector are loaded once), one call at a time, by calling `physical.ingest.ingest_run`
on just the new files; ingest rewrites ingest.json after every photo, and the server watches
that file, so each result reaches the page as soon as it exists.

API (token as `Authorization: Bearer TOKEN`, `?token=TOKEN`, or the cookie the page sets):

    GET  /                 the page (no build step, no external assets)
    POST /api/photos       multipart, field "photos" (one or more files) → per file
                           {"name", "status": "stored" | "duplicate" | "refused", "sha256", "reason"}
                           401 wrong/missing token · 413 body over --max-upload-mb · 415 no file
                           is a JPEG/PNG/HEIC (sniffed from the bytes) · 400 no "photos" field
    GET  /api/status       photos with their ingest results and advice, coverage per page
    GET  /api/events       the same JSON as server-sent events, whenever it changes
    POST /api/finish       when ingest is idle: `physical evaluate` then `physical report`
    GET  /report/...       reports/<run>/ (the finished report)

captures/<run>/serve.json (schema 1)::

    {"schema": 1, "run": "r1", "uploads": [{"sha256", "file": "photos/<sha256>.jpg", "name": "IMG_1.jpg",
      "bytes": 3021331, "type": "image/jpeg", "time": "2026-…Z"}]}
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from physical.errors import PhysicalError
from physical.serve_status import build_status
from physical import records
from physical.workspace import (Workspace, atomic_write_bytes, atomic_write_json, read_json, sha256_bytes,
                                sha256_file)

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 40
MAX_BATCH = 4            # photos per ingest call: keeps shutdown and the next upload's wait short
WATCH_S = 0.05           # how often ingest.json is checked while ingest runs
RETRIES, RETRY_S = 3, 2.0  # a failed ingest call is tried again this often, after this pause
UPLOAD_LOG = "serve.json"
QR_PNG = "serve-qr.png"
COOKIE = "physical_token"
SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"))
# HEIF major brands (ISO/IEC 23008-12: HEVC images and sequences, and the generic image brands);
# iPhones write "heic", ingest decodes them through pillow-heif
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")


def sniff(data: bytes) -> str | None:
    """File extension for JPEG/PNG/HEIC bytes (from their signature, not any name), else None."""
    for signature, ext in SIGNATURES:
        if data.startswith(signature):
            return ext
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return ".heic"
    return None


def _not_image_reason(data: bytes) -> str:
    if not data:
        return "empty file"
    if data[4:8] == b"ftyp":
        return (f"an ISO media file of brand {data[8:12].decode('ascii', 'replace')!r}, not a HEIC photo: "
                "send JPEG, PNG or HEIC")
    return "not a JPEG, PNG or HEIC image (judged from its bytes)"


def display_name(name: str | None, limit: int = 200) -> str:
    """A client's file name, kept only as text: control characters dropped, at most `limit` chars."""
    text = "".join(ch for ch in str(name or "") if ch.isprintable())
    return text[:limit] or "(no name)"


def ingest_lock(ws: Workspace, run: str):
    """The run's writer lock, as serve's ingest takes it (inside `ingest_run`): while another
    command holds the run, the worker's ingest call is refused and tried again (RETRIES)."""
    return ws.lock(run, "serve")


def _ingest_job(root: str, run: str, files: list[str] | None, max_pixels: int) -> dict:
    """Runs in the worker process: ingest the given photos (None: every new one in the folder)."""
    from physical.ingest import ingest_run

    ws = Workspace(root)
    state = ingest_run(ws, run, workers=1, max_pixels=max_pixels, only=files)   # under the run lock
    return state.get("last_session", {})


def _which_run(root: str, run: str, path: str) -> str | None:
    """Runs in the worker process: the workspace's other run whose layout the photo's markers
    identify (for "this sheet belongs to run r2"), or None."""
    from physical import ingest, markers

    ws = Workspace(root)
    try:
        bgr, tag = ingest.read_photo(Path(path).read_bytes())
        dets, _, _ = ingest.find_markers(bgr, tag, records.read(records.LAYOUT, ws, run).dump())
    except Exception:  # unreadable: nothing to say
        return None
    for folder in sorted((ws.root / "printouts").iterdir()):
        if folder.name != run and (folder / "layout.json").is_file():
            try:
                if markers.identify(dets, read_json(folder / "layout.json")).status == markers.STATUS_OK:
                    return folder.name
            except Exception:  # another run's broken layout.json is not this photo's problem
                continue
    return None


def _warm_up() -> int:
    import physical.ingest  # noqa: F401  (forkserver workers have it already; spawn ones load it now)
    import physical.records  # noqa: F401  (ingest_run's, not preloaded: ingest's pool workers need no pydantic)

    return os.getpid()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Service:
    """The run being photographed: uploads, the ingest queue and worker, and the status."""

    def __init__(self, ws: Workspace, run: str, token: str, *, max_upload_bytes: int,
                 max_pixels: int | None = None, finish_steps: list[list[str]] | None = None):
        from physical.ingest import DEFAULT_MAX_PIXELS

        self.ws, self.run, self.token = ws, run, token
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
        layout_path = ws.layout_path(run)
        ws.load_manifest(run)  # a clear error when the run does not exist
        if not layout_path.exists():
            raise PhysicalError(f"{layout_path} does not exist: run `physical layout --run {run}` and print it first")
        self.layout = records.read(records.LAYOUT, ws, run).dump()
        self.captures = ws.captures(run)
        self.ingest_json = self.captures / "ingest.json"
        if self.ingest_json.exists():
            if records.read(records.INGEST, ws, run).layout_sha256 != sha256_file(layout_path):
                raise PhysicalError(f"{self.ingest_json} was made from another layout.json (the PDF was rebuilt): "
                                    f"run `physical ingest --run {run} --force` first, or use a new run")
        (self.captures / "photos").mkdir(parents=True, exist_ok=True)
        log_path = self.captures / UPLOAD_LOG
        self.uploads: list[dict] = read_json(log_path).get("uploads", []) if log_path.exists() else []
        self.finish_steps = finish_steps if finish_steps is not None else [
            [sys.executable, "-m", "physical.cli", "--workspace", str(ws.root), "evaluate", "--run", run],
            [sys.executable, "-m", "physical.cli", "--workspace", str(ws.root), "report", "--run", run]]
        self.queue: list[str] = []      # sha256 waiting for ingest, oldest first
        self.busy: set[str] = set()     # sha256 in the running ingest call
        self.error: str | None = None   # the last ingest call's failure, if it failed
        self.failed: dict[str, str] = {}  # sha256 → why ingest gave up on it (this session)
        self.finish = {"state": "idle", "log": "", "report": None}
        self.other_runs: dict[str, str | None] = {}  # sha256 → the run whose sheet a refused photo shows
        self.version = 0
        self.stopping = False
        self._state: tuple[tuple, dict] = ((), {})
        self._status: tuple[int, dict] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: list[asyncio.Task] = []
        self._finish_proc = None

    # ---------------------------------------------------------------- state
    def ingest_state(self) -> dict:
        """ingest.json, read again only when the file changed."""
        try:
            st = os.stat(self.ingest_json)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = ()
        if key != self._state[0]:
            try:
                state = records.read(records.INGEST, self.ws, self.run).dump() if key else {}
            except PhysicalError:  # caught between writes by something that does not write atomically
                return self._state[1]
            self._state = (key, state)
            self._bump()
        return self._state[1]

    def _bump(self) -> None:
        self.version += 1
        changed = getattr(self, "_changed", None)
        if changed is not None:
            changed.set()
            self._changed = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def status(self) -> dict:
        state = self.ingest_state()
        if self._status is None or self._status[0] != self.version:
            body = build_status(self.run, self.layout, state, self.uploads, set(self.queue), self.busy,
                                self.other_runs, self.failed)
            body.update(version=self.version, ingest={"busy": bool(self.busy or self.queue), "error": self.error},
                        finish=dict(self.finish), max_upload_mb=self.max_upload_bytes / 1e6)
            self._status = (self.version, body)
        return self._status[1]

    def authorized(self, request) -> bool:
        want = self.token.encode()
        auth = request.headers.get("authorization", "")
        given = [auth[7:].strip()] if auth[:7].lower() == "bearer " else []
        given += [request.query_params.get("token", ""), request.cookies.get(COOKIE, "")]
        ok = False
        for g in given:  # every candidate compared, each in constant time
            ok |= hmac.compare_digest(g.encode("utf-8", "replace"), want)
        return ok

    # ---------------------------------------------------------------- uploads
    async def add_photo(self, data: bytes, name: str | None, content_type: str | None) -> dict:
        shown = display_name(name)
        ext = sniff(data)
        if ext is None:
            return {"name": shown, "status": "refused", "code": 415, "reason": _not_image_reason(data)}
        sha = await asyncio.to_thread(sha256_bytes, data)
        async with self._store_lock:
            if sha in self._known():
                first = next((u["name"] for u in self.uploads if u["sha256"] == sha), None)
                return {"name": shown, "status": "duplicate", "sha256": sha,
                        "reason": "already received" + (f" (as {first})" if first and first != shown else "")}
            rel = f"photos/{sha}{ext}"
            await asyncio.to_thread(atomic_write_bytes, self.captures / rel, data)
            self.uploads.append({"sha256": sha, "file": rel, "name": shown, "bytes": len(data),
                                 "type": display_name(content_type, 100), "time": _now()})
            await asyncio.to_thread(atomic_write_json, self.captures / UPLOAD_LOG,
                                    {"schema": 1, "run": self.run, "uploads": self.uploads})
            self.queue.append(sha)
            self._work.set()
            self._bump()
        return {"name": shown, "status": "stored", "sha256": sha, "file": rel}

    def _known(self) -> set[str]:
        known = {u["sha256"] for u in self.uploads}
        known.update(p["sha256"] for p in self.ingest_state().get("photos", []) if p.get("sha256"))
        return known

    # ---------------------------------------------------------------- ingest worker
    async def start(self) -> None:
        from physical.ingest_pool import pool_context

        self._changed = asyncio.Event()
        self._work = asyncio.Event()
        self._store_lock = asyncio.Lock()
        self._context = pool_context()
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=self._context)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, _warm_up)  # started and warm before the first photo
        self._tasks.append(asyncio.create_task(self._ingest_loop(first=self._not_ingested())))

    def _not_ingested(self) -> list[str] | None:
        """Photos of an earlier session (or copied into photos/) that ingest has not seen: the
        uploads among them (shown as busy), or None when there is nothing to do."""
        photos = self.ingest_state().get("photos", [])
        done = {Path(p["file"]).name for p in photos if str(p.get("file", "")).startswith("photos/")}
        if not {p.name for p in self.ws.list_photos(self.run)} - done:
            return None
        ingested = {p.get("sha256") for p in photos}
        return [u["sha256"] for u in self.uploads if u["sha256"] not in ingested]

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        if self._finish_proc is not None and self._finish_proc.returncode is None:
            self._finish_proc.kill()
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)

    async def _ingest_loop(self, first: list[str] | None) -> None:
        if first is not None:  # files=None: ingest lists the folder and takes whatever is new
            await self._ingest(first, None)
        while True:
            await self._work.wait()
            self._work.clear()
            while self.queue:
                batch = self.queue[:MAX_BATCH]
                del self.queue[:len(batch)]
                files = {u["sha256"]: str(self.captures / u["file"]) for u in self.uploads}
                for _ in range(RETRIES):  # e.g. the run locked by a `physical ingest` in another shell
                    if await self._ingest(batch, [files[s] for s in batch]):
                        break
                    await asyncio.sleep(RETRY_S)
                else:  # given up for this session; the next start of the server tries again
                    self.failed.update({s: self.error or "ingest failed" for s in batch})
                    self._bump()

    async def _ingest(self, shas: list[str], files: list[str] | None) -> bool:
        self.busy = set(shas)
        self._bump()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, _ingest_job, str(self.ws.root), self.run, files, self.max_pixels)
        while not job.done():
            await asyncio.wait([job], timeout=WATCH_S)
            self.ingest_state()  # a result per photo, as soon as ingest writes it
        ok = True
        try:
            job.result()
            self.error = None
        except Exception as exc:  # shown on the page
            ok = False
            self.error = str(exc) if isinstance(exc, PhysicalError) else f"{type(exc).__name__}: {exc}"
            log.error("ingest failed: %s", self.error)
            if isinstance(exc, BrokenProcessPool):  # the worker died (killed, out of memory): a new one
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=self._context)
        if ok:
            await self._name_other_runs(loop)
        self.busy = set()
        self.ingest_state()
        self._bump()
        return ok

    async def _name_other_runs(self, loop) -> None:
        """For photos refused as another run's sheet: which run of this workspace it is."""
        files = {u["sha256"]: u["file"] for u in self.uploads}
        for p in self.ingest_state().get("photos", []):
            sha = p.get("sha256")
            if sha in self.other_runs or not (p.get("reason") or "").startswith(("markers of another run",
                                                                                  "unknown markers")):
                continue
            path = self.captures / (files.get(sha) or p["file"])
            try:
                self.other_runs[sha] = await loop.run_in_executor(
                    self._pool, _which_run, str(self.ws.root), self.run, str(path))
            except Exception:
                self.other_runs[sha] = None
            self._bump()

    # ---------------------------------------------------------------- evaluate + report
    def start_finish(self) -> tuple[int, str]:
        if self.finish["state"] == "running":
            return 409, "evaluate is already running"
        if self.busy or self.queue:
            return 409, "ingest is still running: wait until every photo has its result"
        self.finish = {"state": "running", "log": "", "report": None}
        self._bump()
        self._tasks.append(asyncio.create_task(self._finish()))
        return 202, "started"

    async def _finish(self) -> None:
        lines: list[str] = []
        for argv in self.finish_steps:
            self._finish_proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await self._finish_proc.communicate()
            lines += [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()][-6:]
            if self._finish_proc.returncode != 0:
                self.finish = {"state": "failed", "log": "\n".join(lines[-8:]), "report": None}
                self._bump()
                return
        index = self.ws.reports(self.run) / "index.html"
        self.finish = {"state": "done", "log": "\n".join(lines[-8:]),
                       "report": "/report/index.html" if index.exists() else None}
        self._bump()


# -------------------------------------------------------------------- the app


class _TooLarge(Exception):
    pass


def _page_html() -> str:
    return resources.files("physical").joinpath("templates/serve.html").read_text(encoding="utf-8")


def create_app(service: Service):
    """The Starlette app of a Service (its lifespan starts and stops the ingest worker)."""
    from starlette.applications import Starlette
    from starlette.datastructures import UploadFile
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    page = _page_html()

    def denied(html: bool = False):
        if html:
            return HTMLResponse("<!doctype html><meta name=viewport content='width=device-width'>"
                                "<h1>Token missing or wrong</h1><p>Open the URL that <code>physical serve</code> "
                                "printed (or scan its QR code): it ends in <code>?token=…</code>.</p>", 401)
        return JSONResponse({"error": "token missing or wrong: use the URL printed by `physical serve`"}, 401,
                            headers={"WWW-Authenticate": "Bearer"})

    async def index(request: Request):
        if not service.authorized(request):
            return denied(html=True)
        nonce = secrets.token_urlsafe(12)
        body = page.replace("{{nonce}}", nonce).replace("{{run}}", json.dumps(service.run)[1:-1])
        response = HTMLResponse(body, headers={
            "Content-Security-Policy": f"default-src 'self'; script-src 'nonce-{nonce}'; "
                                       f"style-src 'nonce-{nonce}'; img-src 'self' data:",
            "Cache-Control": "no-store"})
        response.set_cookie(COOKIE, service.token, httponly=True, samesite="strict")
        return response

    async def status(request: Request):
        if not service.authorized(request):
            return denied()
        return JSONResponse(service.status(), headers={"Cache-Control": "no-store"})

    async def events(request: Request):
        if not service.authorized(request):
            return denied()

        async def stream():
            last, idle = -1, 0.0
            while not service.stopping:
                body = service.status()
                if body["version"] != last:
                    last, idle = body["version"], 0.0
                    yield f"event: status\ndata: {json.dumps(body)}\n\n"
                elif idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                t = time.monotonic()
                await service.wait_change(0.5 if (service.busy or service.queue) else 1.0)
                idle += time.monotonic() - t

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def photos(request: Request):
        if not service.authorized(request):
            return denied()
        limit = service.max_upload_bytes
        too_large = JSONResponse({"error": f"upload over {limit / 1e6:g} MB (--max-upload-mb): send fewer or "
                                           "smaller photos per request"}, 413)
        try:
            if int(request.headers.get("content-length") or 0) > limit:
                return too_large
        except ValueError:
            return JSONResponse({"error": "bad Content-Length"}, 400)
        received = 0

        async def counted():
            nonlocal received
            message = await request.receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
            return message

        try:
            form = await Request(request.scope, counted).form(max_files=1000, max_fields=20)
        except _TooLarge:
            return too_large
        except Exception as exc:  # malformed multipart
            return JSONResponse({"error": f"not a multipart upload with a 'photos' field ({exc})"}, 400)
        try:
            files = [f for f in form.getlist("photos") if isinstance(f, UploadFile)]
            if not files:
                return JSONResponse({"error": "no file in the multipart field 'photos'"}, 400)
            results = [await service.add_photo(await f.read(), f.filename, f.content_type) for f in files]
        finally:
            await form.close()
        ok = any(r["status"] != "refused" for r in results)
        code = 200 if ok else max(r.get("code", 415) for r in results)
        for r in results:
            r.pop("code", None)
        return JSONResponse({"files": results}, code)

    async def finish(request: Request):
        if not service.authorized(request):
            return denied()
        code, message = service.start_finish()
        return JSONResponse({"message": message}, code)

    async def report(request: Request):
        if not service.authorized(request):
            return denied(html=True)
        root = service.ws.reports(service.run).resolve()
        path = (root / request.path_params["path"]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return Response("not found", 404)
        return FileResponse(path)

    @asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    return Starlette(routes=[
        Route("/", index), Route("/api/status", status), Route("/api/events", events),
        Route("/api/photos", photos, methods=["POST"]), Route("/api/finish", finish, methods=["POST"]),
        Route("/report/{path:path}", report)], lifespan=lifespan)


# -------------------------------------------------------------------- running it


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """Ends the page's event streams first, so a shutdown does not wait on them."""

        def __init__(self, config, service: Service):
            super().__init__(config)
            self.service = service

        async def shutdown(self, sockets=None):
            self.service.stopping = True
            await super().shutdown(sockets)

    return Server


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PhysicalError(f"cannot listen on {host}:{port} ({exc.strerror}): pass another --port or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _config(service: Service, sock: socket.socket):
    import uvicorn

    return uvicorn.Config(create_app(service), fd=None, log_level="warning", access_log=False, lifespan="on",
                          timeout_graceful_shutdown=3, host=sock.getsockname()[0], port=sock.getsockname()[1])


def lan_address(host: str) -> str:
    """The address a phone on the same network uses (for a wildcard host: this machine's
    outgoing interface; a UDP socket's connect sends nothing)."""
    if host not in ("0.0.0.0", "::", ""):
        return f"[{host}]" if ":" in host else host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


class ServerThread:
    """uvicorn on a background thread (tests, benchmarks): `with ServerThread(service) as s: s.url`."""

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 0):
        self.service = service
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{lan_address(host)}:{self.port}"
        self.server = _server_class()(_config(service, self.sock), service)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="physical-serve")

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def serve(ws: Workspace, run: str, *, host: str = "0.0.0.0", port: int = DEFAULT_PORT,
          max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_pixels: int | None = None, echo=print) -> None:
    """`physical serve`: print the URL and its QR code, then serve until Ctrl-C."""
    import segno

    token = secrets.token_urlsafe(16)
    service = Service(ws, run, token, max_upload_bytes=int(max_upload_mb * 1e6), max_pixels=max_pixels)
    sock = bind(host, port)
    url = f"http://{lan_address(host)}:{sock.getsockname()[1]}/?token={token}"
    qr = segno.make(url, error="m")
    qr_path = service.captures / QR_PNG
    import io

    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=8, border=4)
    atomic_write_bytes(qr_path, buf.getvalue())
    echo(url)
    buf = io.StringIO()
    qr.terminal(out=buf, compact=True, border=2)
    echo(buf.getvalue().rstrip("\n"))
    where = ("open it on a phone on the same network (or scan the code)" if host in ("0.0.0.0", "::", "")
             else f"listening on {host} only")
    echo(f"serve {run}: {where}; QR code saved to {qr_path}; photos go to {service.captures / 'photos'}; "
         "Ctrl-C to stop")
    server = _server_class()(_config(service, sock), service)
    n = len(service.uploads)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises the Ctrl-C it caught
        pass
    echo(f"serve {run}: stopped; {len(service.uploads) - n} photo(s) received")
