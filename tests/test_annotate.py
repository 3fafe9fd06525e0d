"""`daad annotate`: masks drawn in a real Label Studio server, started here on 127.0.0.1.

A curator's session: photos without masks (real MVTec AD crack images) get proposals,
go to a Label Studio project with the proposals as pre-annotations, an annotator submits
a brush mask (encoded as Label Studio stores it) and skips another task, and `load`
brings the mask back into the catalog, exactly and once. The assist backend answers
Label Studio's own interactive-annotation requests for a box and for clicks.

Label Studio lives in an environment of its own (see daad/curate/annotate/label_studio.py);
`.ci/run` installs it and sets DAAD_LABEL_STUDIO_BIN. Skipped with that reason when absent.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore
from daad.curate.annotate import brush_rle
from daad.curate.annotate.label_studio import Client, label_studio_program, start_server, stop_server

LS = label_studio_program()
needs_ls = pytest.mark.skipif(LS is None, reason="needs a Label Studio install (DAAD_LABEL_STUDIO_BIN; .ci/run makes one)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

CRACKS = ["capsule/test/crack/001.png", "capsule/test/crack/010.png", "bottle/test/broken_large/006.png"]


def test_brush_rle_round_trip_and_edge_cases():
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (3, 5), (64, 48), (300, 7)]:
        for density in (0.0, 0.02, 0.5, 1.0):
            m = rng.random(shape) < density
            assert (brush_rle.decode(brush_rle.encode(m), shape[1], shape[0]) == m).all()
    with pytest.raises(brush_rle.BrushFormatError, match="RGBA image has"):
        brush_rle.decode(brush_rle.encode(np.ones((4, 4))), 5, 4)
    with pytest.raises(brush_rle.BrushFormatError, match="truncated"):
        brush_rle.decode(brush_rle.encode(np.ones((40, 40)))[:6], 40, 40)


@needs_ls
def test_brush_rle_agrees_with_label_studio_sdk(tmp_path):
    """Our encoder against the SDK's decoder and the SDK's encoder against ours, in Label Studio's own environment."""
    assert LS is not None  # needs_ls skips without it
    python = Path(LS).with_name("python")
    if not python.is_file():
        pytest.skip(f"no python beside {LS}")
    m = np.zeros((37, 53), np.uint8)
    m[5:20, 7:40] = 1
    m[30, 50] = 1
    (tmp_path / "ours.json").write_text(json.dumps({"rle": brush_rle.encode(m), "mask": m.tolist()}))
    code = ("import json, numpy as np\nfrom label_studio_sdk.converter import brush\n"
            f"d = json.load(open({str(tmp_path / 'ours.json')!r}))\nm = np.array(d['mask'], np.uint8)\n"
            "dec = brush.decode_rle(d['rle']).reshape(m.shape + (4,))[:, :, 3]\n"
            "assert ((dec > 0) == (m > 0)).all()\n"
            f"json.dump(brush.mask2rle(m * 255), open({str(tmp_path / 'sdk.json')!r}, 'w'))\n")
    subprocess.run([str(python), "-c", code], check=True, capture_output=True, timeout=120)
    sdk = json.loads((tmp_path / "sdk.json").read_text())
    assert (brush_rle.decode(sdk, 53, 37) == (m > 0)).all()


@pytest.fixture(scope="module")
def ls(tmp_path_factory):
    """daad's own Label Studio server for a fresh DAAD_HOME (the real start path), stopped at the end."""
    if LS is None:
        pytest.skip("needs a Label Studio install (DAAD_LABEL_STUDIO_BIN; .ci/run makes one)")
    home = tmp_path_factory.mktemp("ls-home")
    mp = pytest.MonkeyPatch()
    mp.delenv("DAAD_LABEL_STUDIO_URL", raising=False)
    mp.setenv("DAAD_HOME", str(home))
    # A password a restart reuses, starting with "-" as secrets.token_urlsafe's does once in 64:
    # given as a separate argument, Label Studio's argparse took it for an option and exited.
    (home / "label-studio").mkdir()
    (home / "label-studio" / "server.json").write_text(json.dumps({"password": "-Qx3-leading-dash"}))
    try:
        server = start_server(home, log=lambda _m: None)
        yield home, server
    finally:
        stop_server(home)
        mp.undo()


def _daad(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAAD_HOME": str(home)}
    env.pop("DAAD_LABEL_STUDIO_URL", None)
    return subprocess.run([sys.executable, "-m", "daad", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def sent(ls, shared_data, tmp_path_factory):
    """Three real images collected as photos without masks, two with proposals, sent to project daad-masks."""
    home, server = ls
    photos = tmp_path_factory.mktemp("photos") / "crack"
    photos.mkdir()
    for rel in CRACKS:
        shutil.copyfile(shared_data / "mvtec_ad" / rel, photos / rel.replace("/", "_"))
    assert _daad(home, "collect", "photos", str(photos.parent), "--license", "CC-BY-NC-SA-4.0", "--attribution", "MVTec AD", "--quiet").returncode == 0
    catalog = Catalog(home)
    recs = catalog.find()
    assert len(recs) == 3
    r = _daad(home, "masks", "propose", recs[0].id[:12], recs[1].id[:12], "--quiet")
    assert r.returncode == 0, r.stderr
    r = _daad(home, "annotate", "send", "--class", "crack", "--quiet")
    assert r.returncode == 0, r.stderr
    return home, server, catalog, r.stdout


def _tasks(client: Client, title: str) -> list[dict]:
    proj = client.project(title, create=False)
    assert proj is not None
    return client.tasks(proj["id"])


def test_send_puts_every_sample_once_with_its_proposal(sent):
    home, server, catalog, out = sent
    assert "sent: 3" in out and "label at: http://127.0.0.1:" in out
    assert server.token not in out
    client = Client(server)
    tasks = {t["data"]["daad_id"]: t for t in _tasks(client, "daad-masks")}
    assert set(tasks) == {r.id for r in catalog.find()}
    store = MediaStore(home)
    for rec in catalog.find():
        full = client.call("GET", f"/api/tasks/{tasks[rec.id]['id']}")
        image = requests.get(server.url + full["data"]["image"], headers={"Authorization": f"Token {server.token}"}, timeout=30)
        assert image.status_code == 200 and image.content == store.image_path(rec.id).read_bytes()
        if rec.mask_status == "proposed":
            (pred,) = full["predictions"]
            assert pred["model_version"] == "daad-masks-propose"
            proposal = np.asarray(Image.open(store.mask_path(rec.mask_sha))) > 0
            assert (brush_rle.decode(pred["result"][0]["value"]["rle"], rec.width, rec.height) == proposal).all()
        else:
            assert not full["predictions"]
    again = _daad(home, "annotate", "send", "--class", "crack", "--quiet")
    assert "already-there: 3" in again.stdout and "sent" not in again.stdout
    assert len(_tasks(client, "daad-masks")) == 3


def _brush(mask: np.ndarray, w: int, h: int) -> dict:
    return {"from_name": "mask", "to_name": "image", "type": "brushlabels", "original_width": w, "original_height": h,
            "image_rotation": 0, "value": {"format": "rle", "rle": brush_rle.encode(mask), "brushlabels": ["anomaly"]}}


def test_an_annotators_mask_comes_back_exactly_and_once(sent):
    home, server, catalog, _ = sent
    client = Client(server)
    tasks = {t["data"]["daad_id"]: t for t in _tasks(client, "daad-masks")}
    drawn, skipped, wrong = catalog.find()
    mask = np.zeros((drawn.height, drawn.width), bool)
    mask[200:420, 310:480] = True
    mask[600:640, 100:900] = True
    # Two brush strokes for one sample: the union is its mask.
    client.call("POST", f"/api/tasks/{tasks[drawn.id]['id']}/annotations",
                json={"result": [_brush(mask & (np.arange(drawn.height)[:, None] < 500), drawn.width, drawn.height),
                                 _brush(mask & (np.arange(drawn.height)[:, None] >= 500), drawn.width, drawn.height)]})
    client.call("POST", f"/api/tasks/{tasks[skipped.id]['id']}/annotations", json={"result": [], "was_cancelled": True})
    client.call("POST", f"/api/tasks/{tasks[wrong.id]['id']}/annotations", json={"result": [_brush(np.ones((10, 12), bool), 12, 10)]})
    proj = client.project("daad-masks", create=False)
    assert proj is not None
    client.import_tasks(proj["id"], [{"data": {"image": tasks[drawn.id]["data"]["image"], "daad_id": "f" * 64}}])

    before = {r.id: r for r in catalog.find()}
    r = _daad(home, "annotate", "load", "--quiet")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "annotated: 1  bad: 2  skipped: 1"
    assert any("unknown task" in line and "'" + "f" * 64 + "'" in line for line in lines)
    assert any("drawn on a 12x10 image, but the sample is" in line for line in lines)
    assert any(line.startswith("skipped: task") and "skipped this task" in line for line in lines)

    after = Catalog(home)
    rec = after.get(drawn.id)
    assert rec is not None and rec.mask_status == "annotated" and rec.mask_sha
    stored = np.asarray(Image.open(MediaStore(home).mask_path(rec.mask_sha)))
    assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 255}
    assert ((stored > 0) == mask).all()
    who = {e["who"] for e in after.events(drawn.id) if e["field"] == "mask_status" and e["new"] == "annotated"}
    assert who == {f"label-studio:{server.username}"}
    assert rec.meta["label_studio"]["updated_at"]
    for sid in (skipped.id, wrong.id):
        untouched = after.get(sid)
        assert untouched is not None
        assert (untouched.mask_status, untouched.mask_sha) == (before[sid].mask_status, before[sid].mask_sha)

    events = len(after.events(drawn.id))
    second = _daad(home, "annotate", "load", "--quiet")
    assert second.stdout.splitlines()[0] == "bad: 2  skipped: 1  unchanged: 1"
    assert len(Catalog(home).events(drawn.id)) == events


def _gt_box(shared_data: Path, rel: str) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    cat, _, defect, name = rel.split("/")
    gt = np.asarray(Image.open(shared_data / "mvtec_ad" / cat / "ground_truth" / defect / name.replace(".png", "_mask.png"))) > 0
    ys, xs = np.nonzero(gt)
    return gt, (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())


def test_assist_answers_label_studios_interactive_requests(sent, shared_data):
    from daad.curate.annotate.assist import AssistBackend, catalog_images

    home, server, catalog, _ = sent
    client = Client(server)
    http = AssistBackend(catalog_images(MediaStore(home).root / "images")).serve("127.0.0.1", 0)
    try:
        proj = client.project("daad-masks", create=False)
        assert proj is not None
        backend = client.add_ml_backend(proj["id"], f"http://127.0.0.1:{http.server_address[1]}")
        tasks = {t["data"]["daad_id"]: t for t in _tasks(client, "daad-masks")}
        rec = next(r for r in catalog.find() if r.origin_ref.endswith("capsule_test_crack_010.png"))
        gt, (x, y, w, h) = _gt_box(shared_data, "capsule/test/crack/010.png")
        W, H = rec.width, rec.height
        grow = 0.1
        box = {"type": "rectanglelabels", "from_name": "box", "to_name": "image", "original_width": W, "original_height": H,
               "value": {"x": 100 * (x - grow * w) / W, "y": 100 * (y - grow * h) / H, "width": 100 * w * (1 + 2 * grow) / W,
                         "height": 100 * h * (1 + 2 * grow) / H, "rectanglelabels": ["box to mask"]}}
        answer = client.call("POST", f"/api/ml/{backend['id']}/interactive-annotating",
                             json={"task": tasks[rec.id]["id"], "context": {"result": [box]}})
        (region,) = answer["data"]["result"]
        assert region["type"] == "brushlabels" and region["from_name"] == "mask"
        pred = brush_rle.decode(region["value"]["rle"], W, H)
        inter, union = (pred & gt).sum(), (pred | gt).sum()
        assert pred.any() and inter / union > 0.2  # benchmarks/assist.py: mean 0.41 on MVTec AD, box alone 0.39
        cy, cx = [int(v.mean()) for v in np.nonzero(gt)]
        click = {"type": "keypointlabels", "from_name": "click", "to_name": "image", "original_width": W, "original_height": H,
                 "value": {"x": 100 * cx / W, "y": 100 * cy / H, "keypointlabels": ["positive"]}}
        answer = client.call("POST", f"/api/ml/{backend['id']}/interactive-annotating",
                             json={"task": tasks[rec.id]["id"], "context": {"result": [click]}})
        clicked = brush_rle.decode(answer["data"]["result"][0]["value"]["rle"], W, H)
        assert clicked[cy, cx] or clicked.any()
    finally:
        http.shutdown()


def _login_cookies(server) -> dict[str, str]:
    state = json.loads(server.password_file.read_text())
    s = requests.Session()
    s.get(f"{server.url}/user/login/", timeout=30)
    r = s.post(f"{server.url}/user/login/", data={"email": state["username"], "password": state["password"],
                                                  "csrfmiddlewaretoken": s.cookies.get("csrftoken", "")},
               headers={"Referer": f"{server.url}/user/login/"}, timeout=30)
    assert r.status_code in (200, 302) and "sessionid" in s.cookies, r.text[:300]
    return {name: value for name, value in s.cookies.items() if value is not None}  # a valueless cookie cannot be set


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_labelling_page_shows_the_proposal_in_headless_chromium(sent, artifacts, tmp_path):
    websocket = pytest.importorskip("websocket", reason="needs websocket-client (the test extra)")
    from daad.curate.annotate.tasks import send

    home, server, catalog, _ = sent
    client = Client(server)
    rec = next(r for r in Catalog(home).find() if r.mask_status == "proposed")
    send([rec], "daad-first-look", server, catalog, progress=False)  # a fresh task: the proposal is all it holds
    proj = client.project("daad-first-look", create=False)
    assert proj is not None
    (task,) = _tasks(client, "daad-first-look")
    cookies = _login_cookies(server)
    assert CHROMIUM is not None  # the skipif above
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                             f"--user-data-dir={tmp_path / 'chrome'}", "--remote-debugging-port=0", "--window-size=1400,1000",
                             "about:blank"], stderr=subprocess.PIPE, text=True)
    try:
        ws_url = ""
        deadline = time.monotonic() + 60
        while not ws_url and time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
            if "DevTools listening on" in line:
                ws_url = line.split("DevTools listening on", 1)[1].strip()
        assert ws_url, "chromium did not open its DevTools port"
        port = ws_url.split(":")[2].split("/")[0]
        page = next(t for t in requests.get(f"http://127.0.0.1:{port}/json", timeout=10).json() if t["type"] == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        seq = iter(range(1, 10_000))

        def cdp(method: str, **params):
            mid = next(seq)
            ws.send(json.dumps({"id": mid, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == mid:
                    return msg.get("result", {})

        for name, value in cookies.items():
            cdp("Network.setCookie", name=name, value=value, domain="127.0.0.1", path="/")
        cdp("Page.enable")
        cdp("Page.navigate", url=f"{server.url}/projects/{proj['id']}/data?task={task['id']}")
        text = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(3)
            text = cdp("Runtime.evaluate", expression="document.body ? document.body.innerText : ''", returnByValue=True)["result"].get("value", "")
            if rec.id[:12] in text and "anomaly" in text:
                time.sleep(3)  # let the image and the region render
                break
        shot = cdp("Page.captureScreenshot", format="png")
        out = artifacts / "label-studio-labelling-page.png"
        out.write_bytes(base64.b64decode(shot["data"]))
        assert rec.id[:12] in text, text[:500]  # the task's title (class, id, origin) is on the page
        assert "anomaly" in text  # the proposal, preloaded as a brush region of label "anomaly"
        ws.close()
    finally:
        proc.kill()
        proc.wait()
