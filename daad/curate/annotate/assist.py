"""`daad annotate assist`: a Label Studio ML backend that turns a box or clicks into a brush mask.

Annotators draw a rectangle around the anomaly (the smart "box to mask" tool) and, where
the result is off, add positive clicks (anomaly) and negative clicks (surface); Label
Studio sends them to this backend (interactive pre-annotation, `POST /predict` with the
regions in `params.context`) and shows the mask it answers, which the annotator then
corrects with the brush. No model weights: `cv2.grabCut` seeded by the box (outside it
is background), clicks painted into the seed as sure foreground/background discs, run on a
crop around the box scaled to at most `WORK_SIDE` pixels, so an answer takes well under a
second on any image.

Measured (`python benchmarks/assist.py`: boxes = each ground-truth region's bounding box
grown by 10 % of its size, on the publishers' masks in ../shared/data): see the table in
the README's annotation section and in that script's docstring.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from PIL import Image

from . import brush_rle
from .label_studio import BRUSH

# Chosen on the benchmark below (MVTec AD / Magnetic Tile mean IoU, ms per box on a loaded 2-core machine):
# side 320, 4 iterations, margin 0.5: 0.445 / 0.693, 980 ms; 200, 4, 0.5: 0.394 / 0.693, 309 ms;
# 200, 3, 0.25: 0.443 / 0.682, 385 ms; 160, 5, 0.5: 0.356 / 0.690; 256, 5, 1.0: 0.421 / 0.700, 611 ms.
WORK_SIDE = 200  # grabCut's cost grows with the crop's pixels
CONTEXT = 0.25  # crop margin around the box, as a fraction of its size: grabCut learns the surface from it
CLICK_RADIUS = 0.02  # click discs, as a fraction of the crop's longer side
ITERATIONS = 3
MODEL_VERSION = "daad-grabcut-1"


@dataclass
class Click:
    x: float  # pixels
    y: float
    positive: bool


def box_to_mask(image: np.ndarray, box: tuple[float, float, float, float], clicks: list[Click] | None = None) -> np.ndarray:
    """The anomaly inside `box` (x, y, width, height in pixels) of an RGB image, as a bool mask.

    Falls back to the box itself when grabCut finds no foreground (a flat box).
    """
    h, w = image.shape[:2]
    x, y, bw, bh = box
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(w, int(np.ceil(x + bw))), min(h, int(np.ceil(y + bh)))
    out = np.zeros((h, w), dtype=bool)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out
    mx, my = int(CONTEXT * (x1 - x0)) + 2, int(CONTEXT * (y1 - y0)) + 2
    cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1, :3])
    scale = min(1.0, WORK_SIDE / max(crop.shape[:2]))
    small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else crop
    sh, sw = small.shape[:2]
    seed = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    rx0, ry0 = int((x0 - cx0) * scale), int((y0 - cy0) * scale)
    rx1, ry1 = max(rx0 + 1, int(np.ceil((x1 - cx0) * scale))), max(ry0 + 1, int(np.ceil((y1 - cy0) * scale)))
    seed[ry0:ry1, rx0:rx1] = cv2.GC_PR_FGD
    radius = max(1, int(CLICK_RADIUS * max(sh, sw)))
    for c in clicks or []:
        cv2.circle(seed, (int((c.x - cx0) * scale), int((c.y - cy0) * scale)), radius,
                   int(cv2.GC_FGD if c.positive else cv2.GC_BGD), -1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(small, seed, (0, 0, 0, 0), bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)  # rect unused with a mask
    except cv2.error:  # one colour only inside or outside: nothing to learn from
        seed[:] = cv2.GC_BGD
        seed[ry0:ry1, rx0:rx1] = cv2.GC_PR_FGD
    fg = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if not fg.any():
        fg[ry0:ry1, rx0:rx1] = 1
    full = cv2.resize(fg, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_NEAREST) if scale < 1 else fg
    out[cy0:cy1, cx0:cx1] = full > 0
    box_only = np.zeros_like(out)
    box_only[y0:y1, x0:x1] = True
    return out & box_only


def from_context(image: np.ndarray, regions: list[dict]) -> np.ndarray | None:
    """A mask from Label Studio's interactive context: rectangles and keypoints in percent."""
    h, w = image.shape[:2]
    boxes, clicks = [], []
    for r in regions:
        v = r.get("value", {})
        if r.get("type") == "rectanglelabels":
            boxes.append((v["x"] * w / 100, v["y"] * h / 100, v["width"] * w / 100, v["height"] * h / 100))
        elif r.get("type") == "keypointlabels":
            label = (v.get("keypointlabels") or ["positive"])[0]
            clicks.append(Click(v["x"] * w / 100, v["y"] * h / 100, label != "negative"))
    if not boxes and clicks:  # clicks alone: a box around the positive ones, grown by a third
        pos = [(c.x, c.y) for c in clicks if c.positive] or [(c.x, c.y) for c in clicks]
        xs, ys = [p[0] for p in pos], [p[1] for p in pos]
        side = max(16.0, 0.15 * max(h, w), 1.33 * (max(xs) - min(xs)), 1.33 * (max(ys) - min(ys)))
        boxes.append(((min(xs) + max(xs) - side) / 2, (min(ys) + max(ys) - side) / 2, side, side))
    if not boxes:
        return None
    mask = np.zeros((h, w), dtype=bool)
    for b in boxes:
        mask |= box_to_mask(image, b, clicks)
    return mask


class AssistBackend:
    """Label Studio's ML-backend protocol (`/health`, `/setup`, `/predict`) over `box_to_mask`.

    `image_for(task)` returns the RGB array of a task's image: for daad's own tasks it reads
    the media store by `data.daad_id`, so the backend needs no access to Label Studio's files.
    """

    def __init__(self, image_for: Callable[[dict], np.ndarray]):
        self.image_for = image_for

    def predict(self, request: dict) -> dict:
        context = (request.get("params") or {}).get("context") or {}
        results = []
        for task in request.get("tasks", []):
            regions = context.get("result") or []
            mask = from_context(self.image_for(task), regions) if regions else None
            if mask is None or not mask.any():
                results.append({"result": [], "model_version": MODEL_VERSION})
                continue
            h, w = mask.shape
            to_name = regions[0].get("to_name", "image")
            results.append({"model_version": MODEL_VERSION, "score": 1.0, "result": [{
                "from_name": BRUSH, "to_name": to_name, "type": "brushlabels", "original_width": w, "original_height": h,
                "image_rotation": 0, "value": {"format": "rle", "rle": brush_rle.encode(mask), "brushlabels": ["anomaly"]}}]})
        return {"results": results}

    def serve(self, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
        """A running HTTP server (in a daemon thread); `.shutdown()` stops it."""
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.rstrip("/") in ("/health", ""):
                    self._send(200, {"status": "UP", "model_class": "daad grabCut assist"})
                else:
                    self._send(404, {"error": f"no route {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                except (ValueError, json.JSONDecodeError) as exc:
                    self._send(400, {"error": f"malformed JSON: {exc}"})
                    return
                route = self.path.rstrip("/")
                if route == "/setup":
                    self._send(200, {"model_version": MODEL_VERSION})
                elif route == "/predict":
                    try:
                        self._send(200, backend.predict(body))
                    except (KeyError, ValueError, OSError) as exc:
                        self._send(400, {"error": f"cannot predict: {exc.__class__.__name__}: {exc}"})
                elif route == "/webhook":
                    self._send(200, {})
                else:
                    self._send(404, {"error": f"no route {self.path}"})

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints one line per request
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def catalog_images(media_images: Path) -> Callable[[dict], np.ndarray]:
    """`image_for` reading daad's media store: task `data.daad_id` -> RGB array."""
    def image_for(task: dict) -> np.ndarray:
        sample_id = (task.get("data") or {}).get("daad_id")
        if not isinstance(sample_id, str) or len(sample_id) != 64 or not all(c in "0123456789abcdef" for c in sample_id):
            raise KeyError(f"task {task.get('id')} has no daad_id")
        path = media_images / sample_id[:2] / f"{sample_id}.png"
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    return image_for
