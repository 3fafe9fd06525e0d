"""A Label Studio server to draw masks in: find or start one, and speak its REST API.

Why daad talks to Label Studio over plain HTTP (`requests`) instead of FiftyOne's
`annotate(..., backend="labelstudio")` or the `label-studio-sdk` client: FiftyOne's backend
(FiftyOne 1.22) imports only the result of each annotation, so the annotator's name, the
time and "skipped" are lost, and daad must record who drew every mask; and both it and the
SDK need `label-studio-sdk` in daad's environment, which pins `opencv-python-headless<4.13`
and with it NumPy 2.2 (daad's Poisson editing and FiftyOne use newer ones). The server
itself (`pip install label-studio`) pins Django 5.2, pytz < 2023 and pyarrow < 25, so it
lives in an environment of its own; daad finds its `label-studio` program through
`DAAD_LABEL_STUDIO_BIN`, `PATH`, or `~/.daad-label-studio/bin/label-studio`.

Server choice: `DAAD_LABEL_STUDIO_URL` (+ `LABEL_STUDIO_API_KEY`) names a server someone runs;
otherwise daad starts one under `DAAD_HOME/label-studio/` bound to 127.0.0.1, serving the
media store as local files (no copies), and keeps it running for the annotators; its
address, user and token are in `server.json` there (mode 0600). The token is never printed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from daad.core.errors import DaadError

LABEL_CONFIG = """<View>
  <Header value="$title"/>
  <Image name="image" value="$image" zoom="true" zoomControl="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="anomaly" background="#ff0000"/>
  </BrushLabels>
  <RectangleLabels name="box" toName="image" smart="true" smartOnly="true">
    <Label value="box to mask" background="#ffa500"/>
  </RectangleLabels>
  <KeyPointLabels name="click" toName="image" smart="true" smartOnly="true">
    <Label value="positive" background="#00c000"/>
    <Label value="negative" background="#0060ff"/>
  </KeyPointLabels>
</View>"""
"""One brush label (a DAAD mask is one binary region per image, the class is the sample's);
a box and positive/negative clicks that `daad annotate assist` turns into a brush mask."""

BRUSH = "mask"
LOOPBACK_ALLOWED_BANS = ",".join([  # Label Studio's default banned subnets less 127.0.0.0/8 and ::1
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
    "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "::ffff:0:0/96", "64:ff9b::/96", "100::/64",
    "2001:0000::/32", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8"])
START_TIMEOUT_S = 300.0  # first start runs Label Studio's migrations: ~95 s on 2 busy cores


class LabelStudioError(DaadError):
    """Label Studio cannot be reached, started, or answered with an error."""


@dataclass
class Server:
    url: str
    token: str
    local_root: Path | None = None  # the folder its local-files storage may serve (servers daad started)
    username: str = ""
    password_file: Path | None = None


class Client:
    """The few Label Studio API calls daad needs, with errors as one line."""

    def __init__(self, server: Server, timeout: float = 60.0):
        self.server = server
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {server.token}"
        self.timeout = timeout

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.server.url.rstrip("/") + path
        try:
            r = self.http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioError(f"Label Studio at {self.server.url} did not answer {method} {path}: {exc.__class__.__name__}") from None
        if r.status_code >= 400:
            raise LabelStudioError(f"Label Studio answered {r.status_code} to {method} {path}: {r.text[:300]}")
        return r.json() if r.content else None

    # -- projects and tasks --------------------------------------------------------------
    def project(self, title: str, create: bool = True) -> dict | None:
        """The project called `title` (created with daad's labelling config when missing)."""
        found = self.call("GET", "/api/projects", params={"title": title, "page_size": 1000})
        for p in found.get("results", found) if isinstance(found, dict) else found:
            if p.get("title") == title:
                return p
        if not create:
            return None
        return self.call("POST", "/api/projects", json={"title": title, "label_config": LABEL_CONFIG})

    def tasks(self, project_id: int) -> list[dict]:
        """Every task of a project, with its annotations (Label Studio's JSON export)."""
        return self.call("GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON", "download_all_tasks": "true"})

    def import_tasks(self, project_id: int, tasks: list[dict]) -> None:
        if tasks:
            self.call("POST", f"/api/projects/{project_id}/import", json=tasks)

    def ensure_local_storage(self, project_id: int, folder: Path) -> None:
        """Let the project serve files under `folder` (Label Studio's local-files storage)."""
        existing = self.call("GET", "/api/storages/localfiles", params={"project": project_id})
        if any(Path(s.get("path", "")) == folder for s in existing):
            return
        self.call("POST", "/api/storages/localfiles", json={"project": project_id, "path": str(folder), "use_blob_urls": False, "title": "daad media"})

    def users(self) -> dict[int, str]:
        """{user id: email or username}: who annotated what."""
        return {u["id"]: (u.get("email") or u.get("username") or str(u["id"])) for u in self.call("GET", "/api/users")}

    def add_ml_backend(self, project_id: int, url: str, title: str = "daad assist") -> dict:
        """Connect an ML backend (interactive pre-annotation) to the project, once."""
        for b in self.call("GET", "/api/ml", params={"project": project_id}):
            if b.get("url", "").rstrip("/") == url.rstrip("/"):
                return b
        return self.call("POST", "/api/ml", json={"url": url, "project": project_id, "title": title, "is_interactive": True})


# -- finding or starting a server ----------------------------------------------------------
def label_studio_program() -> str | None:
    for candidate in (os.environ.get("DAAD_LABEL_STUDIO_BIN"), shutil.which("label-studio"),
                      str(Path("~/.daad-label-studio/bin/label-studio").expanduser())):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(url: str, timeout: float = 2.0) -> bool:
    try:
        return requests.get(url.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def server_for(home: Path, start: bool = True, log=print) -> Server:
    """The configured server, daad's own under `home` if it runs, or a newly started one."""
    url = os.environ.get("DAAD_LABEL_STUDIO_URL")
    if url:
        token = os.environ.get("LABEL_STUDIO_API_KEY")
        if not token:
            raise LabelStudioError("DAAD_LABEL_STUDIO_URL is set but LABEL_STUDIO_API_KEY is not: set it to your Label Studio access token (Account & Settings)")
        root = os.environ.get("DAAD_LABEL_STUDIO_LOCAL_ROOT")
        return Server(url, token, Path(root).expanduser() if root else None)
    state_dir = home / "label-studio"
    state_file = state_dir / "server.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if _alive(state["url"]):
            return Server(state["url"], state["token"], Path(state["local_root"]), state["username"], state_file)
    if not start:
        raise LabelStudioError(f"no Label Studio server runs for {home} (`daad annotate send` starts one)")
    return start_server(home, log=log)


def start_server(home: Path, port: int | None = None, log=print) -> Server:
    """Start Label Studio under `home/label-studio` on 127.0.0.1, detached so it outlives the command."""
    program = label_studio_program()
    if program is None:
        raise LabelStudioError(
            "Label Studio is not installed: `python -m venv ~/.daad-label-studio && ~/.daad-label-studio/bin/pip install label-studio` "
            "(its own environment: it pins Django, pytz and pyarrow), or set DAAD_LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to use a running one")
    state_dir = home / "label-studio"
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file = state_dir / "server.json"
    previous = json.loads(state_file.read_text()) if state_file.is_file() else {}
    token = previous.get("token") or secrets.token_hex(20)
    password = previous.get("password") or secrets.token_urlsafe(12)
    username = previous.get("username") or os.environ.get("DAAD_LABEL_STUDIO_USER", "daad@localhost.localdomain")
    port = port or int(previous.get("port") or _free_port())
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ,
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(home),
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
           "LABEL_STUDIO_BASE_DATA_DIR": str(state_dir / "data"),
           # Label Studio refuses ML backends on reserved addresses (SSRF protection); the assist
           # backend runs on loopback, so loopback is let through and the rest stays banned.
           "USE_DEFAULT_BANNED_SUBNETS": "false",
           "USER_ADDITIONAL_BANNED_SUBNETS": LOOPBACK_ALLOWED_BANS}
    # `--name=value`: token_urlsafe starts with "-" once in 64 draws, and argparse takes a
    # separate "-xyz" for an option, so Label Studio exited with "--password: expected one argument".
    cmd = [program, "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port),
           f"--data-dir={state_dir / 'data'}", f"--username={username}", f"--password={password}",
           f"--user-token={token}", "--enable-legacy-api-token", "--log-level", "WARNING"]
    log_file = open(state_dir / "server.log", "ab")
    proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _write_private(state_file, json.dumps({"url": url, "port": port, "pid": proc.pid, "token": token, "username": username,
                                           "password": password, "local_root": str(home)}, indent=1))
    log(f"starting Label Studio at {url} (first start takes a minute or two; log: {state_dir / 'server.log'})")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _alive(url):
        if proc.poll() is not None:
            raise LabelStudioError(f"Label Studio exited with code {proc.returncode} while starting; see {state_dir / 'server.log'}")
        if time.monotonic() > deadline:
            raise LabelStudioError(f"Label Studio did not answer at {url} within {START_TIMEOUT_S:.0f} s; see {state_dir / 'server.log'}")
        time.sleep(1.0)
    return Server(url, token, home, username, state_file)


def stop_server(home: Path) -> bool:
    """Stop the server daad started for `home`; False when none ran."""
    state_file = home / "label-studio" / "server.json"
    if not state_file.is_file():
        return False
    pid = json.loads(state_file.read_text()).get("pid")
    try:
        os.killpg(pid, 15)
    except (ProcessLookupError, PermissionError, TypeError):
        return False
    return True
