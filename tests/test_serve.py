"""`physical serve` against the real server: uvicorn on 127.0.0.1 (a free port), started once
for the module, real HTTP requests, real ingest in its worker process, simulated photos."""
from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from click.testing import CliRunner

from physical import serve_status
from physical.cli import main
from physical.serve import Service, ServerThread, display_name, ingest_lock, sniff
from physical.workspace import Workspace, read_json
from serve_fixtures import TOKEN, done, make_photos, photo, png_without_markers, wait_for

LIMIT = 2_000_000  # --max-upload-mb 2: oversize tests stay cheap


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    ws, photos = make_photos(root)
    service = Service(ws, "g", TOKEN, max_upload_bytes=LIMIT)
    with ServerThread(service) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        yield ws, photos, service, client
        client.close()
    # shut down cleanly: the thread ended and the port is free again
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/api/status")


def _status(client):
    r = client.get("/api/status")
    assert r.status_code == 200
    return r.json()


def _upload(client, name, data, **kw):
    return client.post("/api/photos", files=[("photos", (name, data, "image/jpeg"))], **kw)


def _multipart(parts: list[tuple[bytes, bytes]]) -> tuple[bytes, str]:
    """A multipart body written by hand, so a file name can hold anything (NUL, '..', 5000 chars)."""
    boundary = b"physical-test-boundary-7d3f"
    body = b""
    for filename, data in parts:
        body += (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="photos"; filename="' + filename +
                 b'"\r\nContent-Type: image/jpeg\r\n\r\n' + data + b"\r\n")
    return body + b"--" + boundary + b"--\r\n", "multipart/form-data; boundary=" + boundary.decode()


def _files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_upload_is_stored_ingested_and_counted_per_page(served):
    ws, photos, service, client = served
    data = photos["p1"].read_bytes()
    r = _upload(client, "IMG_0001.jpg", data)
    assert r.status_code == 200
    (answer,) = r.json()["files"]
    assert answer["status"] == "stored" and answer["file"] == f"photos/{answer['sha256']}.jpg"
    # original bytes (EXIF and all) under the content hash; the client's name kept as data
    assert (ws.captures("g") / answer["file"]).read_bytes() == data
    log = read_json(ws.captures("g") / "serve.json")
    assert {"name": "IMG_0001.jpg", "sha256": answer["sha256"]}.items() <= log["uploads"][-1].items()
    s = wait_for(lambda: _status(client), done(answer["sha256"]))
    ph = photo(s, answer["sha256"])
    assert ph["state"] == "accepted" and ph["name"] == "IMG_0001.jpg" and ph["advice"] == []
    assert sorted(i["slot"] for i in ph["images"]) == [0, 1, 2, 3] and {i["page"] for i in ph["images"]} == {1}
    pages = {p["page"]: p for p in s["pages"]}
    assert (pages[1]["in"], pages[1]["total"], pages[1]["missing"]) == (4, 4, [])
    assert (pages[2]["in"], pages[2]["missing"]) == (0, [1, 2, 3, 4])
    assert not s["complete"] and (s["in"], s["printed"]) == (4, 8)
    # and it is a real ingest: ingest.json has the photo and its crops
    state = read_json(ws.captures("g") / "ingest.json")
    assert sum(c["photo_sha256"] == answer["sha256"] for c in state["crops"]) == 4


def test_token_is_required_everywhere(served):
    ws, photos, service, client = served
    base = str(client.base_url)
    for path in ("/", "/api/status", "/api/events", "/report/index.html"):
        assert httpx.get(base + path).status_code == 401, path
        assert httpx.get(base + path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert httpx.get(base + path + "?token=" + "x" * len(TOKEN)).status_code == 401, path
    before = _files_under(ws.captures("g") / "photos")
    for headers in ({}, {"Authorization": "Bearer " + TOKEN[:-1]}, {"Authorization": "Basic " + TOKEN}):
        r = httpx.post(base + "/api/photos", files=[("photos", ("x.jpg", photos["p2"].read_bytes()))], headers=headers)
        assert r.status_code == 401
    assert httpx.post(base + "/api/finish").status_code == 401
    assert _files_under(ws.captures("g") / "photos") == before
    # the right token as a query parameter, and the cookie the page sets
    r = httpx.get(base + "/?token=" + TOKEN)
    assert r.status_code == 200 and 'capture="environment"' in r.text and "<script" in r.text
    assert "nonce-" in r.headers["content-security-policy"]
    cookie = r.cookies.get("physical_token")
    assert cookie == TOKEN
    assert httpx.get(base + "/api/status", cookies={"physical_token": cookie}).status_code == 200


def test_oversize_upload_is_413_and_nothing_is_stored(served):
    ws, photos, service, client = served
    before = _files_under(ws.captures("g"))
    big = b"\xff\xd8\xff" + os.urandom(LIMIT + 1000)
    r = _upload(client, "big.jpg", big)
    assert r.status_code == 413 and "2 MB" in r.json()["error"]
    # without a Content-Length (chunked): counted while it arrives
    body, ctype = _multipart([(b"big.jpg", big)])
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    r = client.post("/api/photos", content=chunks, headers={"Content-Type": ctype})
    assert r.status_code == 413
    assert _files_under(ws.captures("g")) == before


def test_non_images_are_415_by_their_bytes(served):
    ws, photos, service, client = served
    before = _files_under(ws.captures("g") / "photos")
    r = _upload(client, "photo.jpg", b"GIF89a not a jpeg at all")
    assert r.status_code == 415
    assert r.json()["files"][0]["status"] == "refused" and "JPEG, PNG or HEIC" in r.json()["files"][0]["reason"]
    video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 100   # an MP4: ISO media, not HEIF
    r = _upload(client, "IMG_0002.MOV", video)
    assert r.status_code == 415 and "'isom'" in r.json()["files"][0]["reason"]
    assert _upload(client, "empty.jpg", b"").status_code == 415
    assert client.post("/api/photos", data={"other": "field"}).status_code == 400
    assert _files_under(ws.captures("g") / "photos") == before
    # a real PNG is taken (sniffed as PNG, stored as .png) and ingest says why it is no use
    r = _upload(client, "screenshot.jpg", png_without_markers())
    answer = r.json()["files"][0]
    assert r.status_code == 200 and answer["file"].endswith(".png")
    ph = photo(wait_for(lambda: _status(client), done(answer["sha256"])), answer["sha256"])
    assert ph["state"] == "rejected" and ph["reason"] == "no markers found"
    assert "get the whole sheet in the frame" in ph["advice"][0]


def test_heic_upload_is_stored_as_sent_and_ingested(served, tmp_path):
    """An iPhone's HEIC (made by pillow-heif from the page-2 photo, EXIF orientation 8 and a
    camera model): stored byte for byte as photos/<sha256>.heic, ingested with the orientation
    applied, all four images of page 2 in."""
    import pillow_heif
    from PIL import Image, ImageOps

    pillow_heif.register_heif_opener()
    ws, photos, service, client = served
    shown = ImageOps.exif_transpose(Image.open(photos["p2"])).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8      # displayed = stored turned 90° anticlockwise
    exif[0x0110] = "iPhone (test)"
    buf = tmp_path / "IMG_0003.HEIC"
    shown.transpose(Image.Transpose.ROTATE_270).save(buf, format="HEIF", quality=92, exif=exif.tobytes())
    data = buf.read_bytes()
    assert sniff(data) == ".heic"
    r = client.post("/api/photos", files=[("photos", ("IMG_0003.HEIC", data, "image/heic"))])
    (answer,) = r.json()["files"]
    assert r.status_code == 200 and answer["status"] == "stored" and answer["file"] == f"photos/{answer['sha256']}.heic"
    assert (ws.captures("g") / answer["file"]).read_bytes() == data          # as sent, EXIF and all
    assert Image.open(ws.captures("g") / answer["file"]).getexif()[0x0110] == "iPhone (test)"
    ph = photo(wait_for(lambda: _status(client), done(answer["sha256"])), answer["sha256"])
    assert ph["state"] == "accepted", ph
    assert sorted(i["slot"] for i in ph["images"]) == [0, 1, 2, 3] and {i["page"] for i in ph["images"]} == {2}
    wait_for(lambda: _status(client), lambda s: not s["ingest"]["busy"])   # the run lock is free again


def test_duplicate_is_recognised_by_its_hash(served):
    ws, photos, service, client = served
    data = photos["p1"].read_bytes()
    r = _upload(client, "IMG_0001.jpg", data)
    if r.json()["files"][0]["status"] == "stored":  # alone (-k): the first copy
        wait_for(lambda: _status(client), done(r.json()["files"][0]["sha256"]))
    before = _files_under(ws.captures("g") / "photos")
    n = len(read_json(ws.captures("g") / "serve.json")["uploads"])
    r = _upload(client, "copy of IMG_0001.jpg", data)
    (answer,) = r.json()["files"]
    assert r.status_code == 200 and answer["status"] == "duplicate"
    assert "already received" in answer["reason"]
    assert _files_under(ws.captures("g") / "photos") == before
    assert len(read_json(ws.captures("g") / "serve.json")["uploads"]) == n


def test_hostile_file_names_are_only_data(served):
    ws, photos, service, client = served
    root = ws.root
    outside = _files_under(root.parent)
    data = png_without_markers(seed=11)
    names = [b"../../etc/passwd", b"..\\..\\x.jpg", b"a\x00b.jpg", b"/abs/olute.jpg", b"x" * 4000 + b".jpg",
             "f\u00fcr \u202e.jpg".encode()]
    # several files in one request: the same photo under each name (stored once, then duplicates)
    body, ctype = _multipart([(n, data) for n in names])
    r = client.post("/api/photos", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200
    answers = r.json()["files"]
    assert len(answers) == len(names)
    assert [a["status"] for a in answers].count("stored") <= 1
    assert all(a["status"] in ("stored", "duplicate") for a in answers)
    for a in answers:
        assert len(a["name"]) <= 200 and "\x00" not in a["name"] and "\u202e" not in a["name"]
    # a header line over python-multipart's 4 kB limit: the whole request is refused
    body, ctype = _multipart([(b"y" * 5000 + b".jpg", png_without_markers(seed=12))])
    r = client.post("/api/photos", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and "multipart" in r.json()["error"]
    # nothing written anywhere but captures/g (photos by hash, serve.json, ingest's own files) and
    # the workspace's run locks (.locks/g.*)
    now = _files_under(root.parent)
    new = [p for p in now if p not in outside]
    prefix = os.path.join(root.name, "captures", "g") + os.sep
    locks = os.path.join(root.name, ".locks", "g.")
    assert all(p.startswith(prefix) or p.startswith(locks) for p in new), new
    assert all("passwd" not in p and "olute" not in p for p in now)
    sha = answers[0]["sha256"]
    assert all(a["sha256"] == sha for a in answers)
    ph = photo(wait_for(lambda: _status(client), done(sha)), sha)
    assert ph["state"] == "rejected" and ph["name"] == answers[0]["name"]


def test_photo_of_another_run_names_that_run(served):
    ws, photos, service, client = served
    r = _upload(client, "wrong-sheet.jpg", photos["other"].read_bytes())
    sha = r.json()["files"][0]["sha256"]
    # the run's name comes once ingest's call is over (its markers checked against the other layouts)
    ph = photo(wait_for(lambda: _status(client), lambda s: done(sha)(s) and not s["ingest"]["busy"]), sha)
    assert ph["state"] == "rejected" and ph["reason"].startswith("markers of another run")
    assert ph["advice"][0].startswith("this sheet belongs to run other, not g")


def test_cut_off_image_gets_advice_and_stays_missing(served):
    ws, photos, service, client = served
    r = _upload(client, "cut.jpg", photos["cut"].read_bytes())
    sha = r.json()["files"][0]["sha256"]
    ph = photo(wait_for(lambda: _status(client), done(sha)), sha)
    slot = photos["cut_slot"]
    label = f"image {slot['slot'] + 1} of page 1 ({slot['image_id']} · {slot['variant']})"
    assert any(label in a and "cut off" in a for a in ph["advice"]), ph
    assert all(i["slot"] != slot["slot"] for i in ph["images"])


def test_events_stream_sends_status_on_change_and_all_in_offers_evaluate(served):
    ws, photos, service, client = served
    with client.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        first = _next_event(lines)
        assert first["run"] == "g"
        r = _upload(client, "IMG_0003.jpg", photos["p2"].read_bytes())
        sha = r.json()["files"][0]["sha256"]
        while True:  # events keep coming until page 2's photo has its result
            event = _next_event(lines)
            assert event["version"] > first["version"]
            if done(sha)(event):
                break
    pages = {p["page"]: p for p in event["pages"]}
    assert pages[2]["in"] == 4 and event["complete"]
    assert event["finish"]["state"] == "idle"


def test_ingest_waits_for_the_run_lock_and_reports_a_failure(served):
    """One ingest per run at a time: while another process's ingest holds the run, an upload
    waits; a broken ingest.json makes ingest fail, and the page says so for that photo."""
    ws, photos, service, client = served
    from PIL import Image

    def variant(quality):  # the same sheet saved again: other bytes, another photo
        import io
        buf = io.BytesIO()
        Image.open(photos["p1"]).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    with ingest_lock(ws, "g"):
        sha = _upload(client, "while-locked.jpg", variant(80)).json()["files"][0]["sha256"]
        time.sleep(1.0)
        assert photo(_status(client), sha)["state"] in ("queued", "ingesting")
    assert photo(wait_for(lambda: _status(client), done(sha)), sha)["state"] == "accepted"

    path = ws.captures("g") / "ingest.json"
    good = path.read_bytes()
    try:
        path.write_text("{ not json")
        sha = _upload(client, "broken.jpg", variant(70)).json()["files"][0]["sha256"]
        ph = photo(wait_for(lambda: _status(client), lambda s: photo(s, sha)["state"] == "failed"), sha)
        assert "not valid JSON" in ph["reason"] and "tried again" in ph["advice"][0]
    finally:
        path.write_bytes(good)


def _next_event(lines) -> dict:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("stream ended")


def test_finish_runs_evaluate_and_reports_its_failure(served):
    """The real `physical evaluate` in a subprocess; on this fake run (its model is "fake") it
    fails, and the page gets that line."""
    ws, photos, service, client = served
    wait_for(lambda: _status(client), lambda s: not s["ingest"]["busy"])
    r = client.post("/api/finish")
    assert r.status_code == 202
    assert client.post("/api/finish").status_code == 409  # one at a time
    s = wait_for(lambda: _status(client), lambda s: s["finish"]["state"] != "running", timeout=300)
    assert s["finish"]["state"] == "failed" and "fake" in s["finish"]["log"], s["finish"]


def test_restart_ingests_photos_left_over(tmp_path):
    """Photos stored but not ingested (the server stopped first), and photos copied into the
    folder by hand, are ingested at the next start."""
    from physical.workspace import atomic_write_json, sha256_file

    ws, photos = make_photos(tmp_path)
    dest = ws.captures("g") / "photos"
    dest.mkdir(parents=True, exist_ok=True)
    sha = sha256_file(photos["p1"])
    (dest / f"{sha}.jpg").write_bytes(photos["p1"].read_bytes())
    atomic_write_json(ws.captures("g") / "serve.json", {"schema": 1, "run": "g", "uploads": [
        {"sha256": sha, "file": f"photos/{sha}.jpg", "name": "IMG_7.jpg", "bytes": 1, "type": "image/jpeg",
         "time": "2026-01-01T00:00:00Z"}]})
    (dest / "copied.jpg").write_bytes(photos["p2"].read_bytes())
    service = Service(ws, "g", TOKEN, max_upload_bytes=LIMIT)
    with ServerThread(service) as server:
        s = wait_for(lambda: httpx.get(server.url + "/api/status?token=" + TOKEN).json(),
                     lambda s: len(s["photos"]) == 2 and all(p["state"] == "accepted" for p in s["photos"]))
    assert sorted(p["name"] for p in s["photos"]) == ["IMG_7.jpg", "copied.jpg"]
    assert s["complete"]


def test_cli_refuses_a_run_without_layout_and_a_busy_port(tmp_path):
    from conftest import make_fake_run

    make_fake_run(tmp_path, run="nolayout")
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "serve", "--run", "nolayout", "--host", "127.0.0.1"])
    assert r.exit_code == 1 and "physical layout --run nolayout" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["-w", str(tmp_path), "serve", "--run", "missing", "--host", "127.0.0.1"])
    assert r.exit_code == 1 and "no run 'missing'" in r.output
    import socket

    from physical import layout as layout_mod

    layout_mod.make_layout(Workspace(tmp_path), "nolayout", image_mm=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(main, ["-w", str(tmp_path), "serve", "--run", "nolayout", "--host", "127.0.0.1",
                                      "--port", str(port)])
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output


# ------------------------------------------------------------------ the pure parts


def test_sniff_and_display_name():
    assert sniff(b"\xff\xd8\xff\xe0rest") == ".jpg" and sniff(b"\x89PNG\r\n\x1a\nrest") == ".png"
    assert sniff(b"GIF89a") is None and sniff(b"") is None and sniff(b"\xff\xd8") is None
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") == ".heic"
    assert sniff(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic") == ".heic"
    assert sniff(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") is None
    assert display_name("../../etc/passwd") == "../../etc/passwd"  # data, shown as typed
    assert display_name("a\x00b\nc") == "abc" and len(display_name("x" * 999)) == 200
    assert display_name("") == "(no name)"


@pytest.mark.parametrize("reason, expected", [
    ("image partly out of frame", "image 5 of page 2 (cat · clean) cut off"),
    ("too few markers around the image (2 of 4 found)", "markers of image 5 of page 2 (cat · clean) cut off (2 of 4"),
    ("markers do not fit a flat sheet (reprojection error 3.1 px)", "lay it flat"),
])
def test_slot_advice(reason, expected):
    assert expected in serve_status.slot_advice(reason, serve_status.image_label(2, 4, "cat", "clean"))


@pytest.mark.parametrize("reason, expected", [
    ("no markers found", "get the whole sheet in the frame"),
    ("unknown markers: 3 markers found but no printed image of run 'g' has 2 of them", "move closer"),
    ("markers of another run: markers belong to another run's sheet (run tag 999, run 'g' has tag 1)",
     "this sheet belongs to another run, not g"),
    ("over decompression limit (20000x20000 = 400 MP > 200 MP)", "normal mode"),
    ("unreadable (truncated or corrupt: image file is truncated)", "take the photo again"),
])
def test_photo_advice(reason, expected):
    assert expected in serve_status.photo_advice("g", reason)
    named = serve_status.photo_advice("g", reason, other_run="r2")
    if reason.startswith(("markers of another run", "unknown markers")):  # the server found run r2's layout
        assert named.startswith("this sheet belongs to run r2, not g")
    else:
        assert "r2" not in named


def test_blur_advice_compares_with_the_other_photos():
    layout = {"pages": [{"page": 1, "slots": [{"slot": i, "image_id": f"i{i}", "variant": "clean"} for i in range(2)]}]}
    photos, crops = [], []
    for n, sharp in enumerate([100.0, 110.0, 90.0, 30.0]):
        sha = f"{n:064d}"
        photos.append({"sha256": sha, "file": f"photos/{n}.jpg", "status": "accepted", "reason": None, "page": 1,
                       "pages": [1], "slots_rejected": []})
        crops += [{"photo_sha256": sha, "page": 1, "slot": s, "image_id": f"i{s}", "variant": "clean",
                   "sharpness": sharp, "used": False} for s in range(2)]
    s = serve_status.build_status("g", layout, {"photos": photos, "crops": crops}, [], set(), set())
    advice = {p["file"]: p["advice"] for p in s["photos"]}
    assert [len(advice[f"photos/{n}.jpg"]) for n in range(4)] == [0, 0, 0, 1]
    assert "too blurred" in advice["photos/3.jpg"][0] and s["complete"]


def test_cli_prints_the_url_and_qr_and_stops_on_ctrl_c(tmp_path):
    import signal
    import subprocess
    import sys

    from conftest import make_fake_run
    from physical import layout as layout_mod

    ws = make_fake_run(tmp_path, run="c")
    layout_mod.make_layout(ws, "c", image_mm=60)
    proc = subprocess.Popen([sys.executable, "-m", "physical.cli", "-w", str(tmp_path), "serve", "--run", "c",
                             "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url, url
        rest = [proc.stdout.readline() for _ in range(3)]
        assert any("\u2588" in line or "\u2580" in line or "\u2584" in line for line in rest)  # the QR, in blocks
        status = wait_for(lambda: _try_get(url.replace("/?", "/api/status?")), lambda s: s is not None, timeout=60)
        assert status["run"] == "c" and status["printed"] == 4
        assert (ws.captures("c") / "serve-qr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def _try_get(url):
    try:
        r = httpx.get(url)
        return r.json() if r.status_code == 200 else None
    except httpx.TransportError:
        return None
