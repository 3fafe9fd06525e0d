"""`daad push` / `daad publish --push` against a local Hub: the real huggingface_hub client, a real HTTP server.

The server on 127.0.0.1 answers the calls `huggingface_hub` makes for create_repo,
list_repo_refs, update_repo_settings, validate-yaml, list_repo_tree, preupload, the git-LFS
batch API and uploads, commit and create_tag, and keeps a repo tree, so the test can say
which files each commit carried, what the uploaded bytes were, and which tag points where.
(`HF_HUB_DISABLE_XET=1` makes the client use the LFS protocol, which a test server can
speak; with hf_xet the file bytes would go to Xet storage instead, through the same calls.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore
from daad.release.publish import publish

from test_publish import catalog, mixed_catalog, mixed_home  # noqa: F401  (the same real catalog as the round trip)

TOKEN = "hf_testtoken_never_printed_0123456789"


class FakeHub:
    """The state of a tiny Hub: repos with a file tree, commits, tags, settings, LFS objects."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.lfs: dict[str, bytes] = {}
        self.calls: list[str] = []  # "METHOD /path" in order
        self.unknown: list[str] = []
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        self.endpoint = ""  # the fixture sets it once its server listens

    def repo(self, repo_id: str) -> dict[str, Any]:
        return self.repos[repo_id]


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, code: int, payload: Any = None) -> None:
            data = json.dumps(payload if payload is not None else {}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            body = self._body()
            base = f"http://{self.headers['Host']}"
            with hub.lock:
                hub.calls.append(f"{method} {path}")
                if self.headers.get("Authorization"):
                    hub.auth.add(self.headers["Authorization"])
                m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(refs|settings|tree/main|preupload/main|commit/main|tag/([^/]+))", path)
                if method == "POST" and path == "/api/repos/create":
                    req = json.loads(body)
                    rid = f"{req['organization']}/{req['name']}"
                    if rid in hub.repos:
                        return self._send(409, {"error": "You already created this dataset repo", "url": f"{base}/datasets/{rid}"})
                    hub.repos[rid] = {"create": req, "files": {".gitattributes": b"*.parquet filter=lfs\n"}, "commits": [], "tags": {}, "settings": []}
                    return self._send(200, {"url": f"{base}/datasets/{rid}", "name": rid})
                if method == "GET" and path == "/api/agent-harnesses":  # the client's optional, best-effort registry fetch
                    return self._send(200, [])
                if method == "POST" and path == "/api/validate-yaml":
                    return self._send(200, {"errors": [], "warnings": []})
                if method == "PUT" and path.startswith("/lfs/"):
                    oid = path.rsplit("/", 1)[1]
                    if hashlib.sha256(body).hexdigest() != oid:
                        return self._send(400, {"error": "sha256 mismatch"})
                    hub.lfs[oid] = body
                    return self._send(200)
                lm = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
                if method == "POST" and lm:
                    objs = json.loads(body)["objects"]
                    return self._send(200, {"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": f"{base}/lfs/{o['oid']}"}}}
                        if o["oid"] not in hub.lfs else {"oid": o["oid"], "size": o["size"]} for o in objs]})
                im = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/main)?", path)
                if method == "GET" and im and im.group(1) in hub.repos:  # repo info: access as it is now
                    r = hub.repos[im.group(1)]
                    private, gated = r["create"].get("private", False) or r["create"].get("visibility") == "private", False
                    for s in r["settings"]:
                        if "visibility" in s:
                            private = s["visibility"] == "private"
                        if s.get("private") is not None:
                            private = bool(s["private"])
                        if s.get("gated") is not None:
                            gated = s["gated"]
                    return self._send(200, {"id": im.group(1), "private": private, "gated": gated, "sha": r["commits"][-1]["oid"] if r["commits"] else None})
                if not m or m.group(1) not in hub.repos:
                    hub.unknown.append(f"{method} {path}")
                    return self._send(404, {"error": "Repository not found"})
                repo = hub.repos[m.group(1)]
                what = m.group(2)
                if method == "GET" and what == "refs":
                    head = repo["commits"][-1]["oid"] if repo["commits"] else "0" * 40
                    return self._send(200, {
                        "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": head}], "converts": [],
                        "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": o} for t, o in repo["tags"].items()]})
                if method == "PUT" and what == "settings":
                    repo["settings"].append(json.loads(body))
                    return self._send(200)
                if method == "GET" and what == "tree/main":
                    return self._send(200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()} for p, b in sorted(repo["files"].items())])
                if method == "POST" and what == "preupload/main":
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
                                                       "shouldIgnore": False, "oid": None} for f in files]})
                if method == "POST" and what == "commit/main":
                    ops = [json.loads(line) for line in body.splitlines() if line.strip()]
                    commit = {"summary": ops[0]["value"]["summary"], "description": ops[0]["value"]["description"], "added": [], "deleted": []}
                    for op in ops[1:]:
                        v = op["value"]
                        if op["key"] == "deletedFile":
                            repo["files"].pop(v["path"])
                            commit["deleted"].append(v["path"])
                        elif op["key"] == "file":
                            repo["files"][v["path"]] = base64.b64decode(v["content"])
                            commit["added"].append(v["path"])
                        elif op["key"] == "lfsFile":
                            if v["oid"] not in hub.lfs:
                                return self._send(400, {"error": f"LFS object {v['oid']} was never uploaded"})
                            repo["files"][v["path"]] = hub.lfs[v["oid"]]
                            commit["added"].append(v["path"])
                        else:
                            return self._send(400, {"error": f"unexpected operation {op['key']}"})
                    commit["oid"] = hashlib.sha1(json.dumps([commit, len(repo["commits"])], sort_keys=True).encode()).hexdigest()
                    repo["commits"].append(commit)
                    return self._send(200, {"commitUrl": f"{base}/datasets/{m.group(1)}/commit/{commit['oid']}", "commitOid": commit["oid"], "success": True})
                if method == "POST" and m.group(3):
                    tag = json.loads(body)["tag"]
                    if tag in repo["tags"]:
                        return self._send(409, {"error": "Tag already exists"})
                    repo["tags"][tag] = m.group(3)
                    return self._send(200)
                hub.unknown.append(f"{method} {path}")
                return self._send(404, {"error": "not found"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

    return Handler


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield hub
    server.shutdown()
    server.server_close()


def _daad(hub: FakeHub, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(Path(os.environ["DAAD_HOME"]).parent / "hf-home")}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "daad", *args], capture_output=True, text=True, env=env, timeout=120)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_one_commit_per_version_then_tag(mixed_catalog, catalog: Catalog, store: MediaStore, fake_hub: FakeHub, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "hub"
    v1 = publish(catalog, "1.0.0", out, shard_bytes=1_500_000, repo_id="acme/daad", progress=False)

    proc = _daad(fake_hub, "push", str(v1.path), "acme/daad", "--private")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert TOKEN not in proc.stdout + proc.stderr
    assert fake_hub.auth == {f"Bearer {TOKEN}"}  # the token from HF_TOKEN was used on every call
    assert fake_hub.unknown == []
    repo = fake_hub.repo("acme/daad")
    assert repo["create"]["type"] == "dataset" and repo["create"]["visibility"] == "private"
    # Gate and privacy are set before any data lands (the MVTec rows are CC BY-NC-SA: gate auto).
    assert repo["settings"] == [{"gated": "auto", "visibility": "private"}]
    calls = fake_hub.calls
    assert calls.index("PUT /api/datasets/acme/daad/settings") < calls.index("POST /api/datasets/acme/daad/commit/main")
    assert len(repo["commits"]) == 1
    c1 = repo["commits"][0]
    assert c1["summary"] == "DAAD v1.0.0" and c1["description"] == "First version: 8 samples."
    local = _tree(v1.path)
    assert sorted(c1["added"]) == sorted(local)
    assert {p: b for p, b in repo["files"].items() if p != ".gitattributes"} == local  # byte for byte, shards via LFS
    assert {hashlib.sha256(local[s]).hexdigest() for s in v1.shards} <= set(fake_hub.lfs)
    assert repo["tags"] == {"v1.0.0": c1["oid"]}
    assert f"commit {c1['oid'][:12]}, tag v1.0.0" in proc.stdout
    assert "(private, gated (auto))" in proc.stdout

    # The same version again: refused before anything is uploaded.
    again = _daad(fake_hub, "push", str(v1.path), "acme/daad")
    assert again.returncode != 0 and "already has tag v1.0.0" in again.stderr and "Traceback" not in again.stderr
    assert len(repo["commits"]) == 1

    # Next version through `daad publish --push`: one commit whose tree is exactly v1.1.0.
    from daad.core import taxonomy

    catalog.update(mixed_catalog["p_leak_visa"], who="review", duplicate_of=mixed_catalog["p_crack"])
    catalog.update(mixed_catalog["p_unassigned"], who="review", anomaly_class=taxonomy.CLASSES[3])
    # A removal calls for a major bump: refused before anything is written, then forced.
    small = _daad(fake_hub, "publish", "--version", "1.1.0", "--out", str(out), "--push", "acme/daad", "--quiet")
    assert small.returncode == 1 and "call for a major bump (e.g. v2.0.0); nothing written" in small.stderr, small.stderr
    assert not (out / "v1.1.0").exists()
    proc = _daad(fake_hub, "publish", "--version", "1.1.0", "--out", str(out), "--shard-size", "1500000", "--push", "acme/daad",
                 "--quiet", "--force-version")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(private, gated (auto))" in proc.stdout  # no --private this time, but the repo stays private: say so
    assert TOKEN not in proc.stdout + proc.stderr
    assert len(repo["commits"]) == 2
    c2 = repo["commits"][1]
    assert c2["summary"] == "DAAD v1.1.0"
    assert c2["description"] == "Since v1.0.0: 1 added, 1 removed, 0 relabelled, 0 mask changed."
    v2 = _tree(out / "v1.1.0")
    assert {p: b for p, b in repo["files"].items() if p != ".gitattributes"} == v2
    assert "data/leaks-visa/train-00000-of-00001.parquet" in c2["deleted"]  # the visa group is gone
    assert 'load_dataset("acme/daad", "exclude_mvtec_ad", split="train", revision="v1.1.0")' in repo["files"]["README.md"].decode()
    assert repo["tags"] == {"v1.0.0": c1["oid"], "v1.1.0": c2["oid"]}
    assert fake_hub.unknown == []

    # A Hub that cannot be reached: one line naming what failed and how to retry, no token.
    down_hub = FakeHub()
    down_hub.endpoint = "http://127.0.0.1:9"  # nothing listens there
    down = _daad(down_hub, "push", str(out / "v1.1.0"), "acme/daad")
    assert down.returncode == 1 and "Traceback" not in down.stderr and TOKEN not in down.stdout + down.stderr
    assert f"retry with `daad push {out / 'v1.1.0'} acme/daad`" in down.stderr
