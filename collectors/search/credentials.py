"""API keys and contact details: from environment variables, else `DAAD_HOME/search.yaml`.

Why both: environment variables suit CI and one-off runs; a file suits a curator's
machine. Environment variables win. The values are handed to the HTTP layer as secrets
(redacted from every error) and never printed or stored in the catalog.

    # DAAD_HOME/search.yaml (chmod 600)
    contact: curator@example.org      # Wikimedia asks every client for contact details
    openverse:
      token: <access token>           # optional; anonymous works with smaller pages
    flickr:
      api_key: <key>                  # required by Flickr
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from daad.core.settings import daad_home

CONFIG_NAME = "search.yaml"
ENV = {"contact": "DAAD_CONTACT", "openverse_token": "OPENVERSE_TOKEN", "flickr_api_key": "FLICKR_API_KEY"}


@dataclass(frozen=True)
class Credentials:
    contact: str = ""
    openverse_token: str = ""
    flickr_api_key: str = ""

    def __repr__(self) -> str:  # never show secrets, even in a traceback's locals
        def shown(v: str) -> str:
            return "set" if v else "unset"

        return f"Credentials(contact={self.contact!r}, openverse_token={shown(self.openverse_token)}, flickr_api_key={shown(self.flickr_api_key)})"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.openverse_token, self.flickr_api_key) if s)


def load_credentials(home: Path | str | None = None) -> Credentials:
    """Credentials from the environment, falling back to `<home>/search.yaml`."""
    path = Path(home or daad_home()) / CONFIG_NAME
    conf: dict = {}
    if path.is_file():
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(f"{path} is readable by other users; `chmod 600 {path}`", stacklevel=2)
        conf = yaml.safe_load(path.read_text()) or {}
        if not isinstance(conf, dict):
            raise ValueError(f"{path}: expected a mapping (contact:, openverse: token:, flickr: api_key:)")
    from_file = {
        "contact": str(conf.get("contact") or ""),
        "openverse_token": str((conf.get("openverse") or {}).get("token") or ""),
        "flickr_api_key": str((conf.get("flickr") or {}).get("api_key") or ""),
    }
    return Credentials(**{k: os.environ.get(env) or from_file[k] for k, env in ENV.items()})


def user_agent(contact: str) -> str:
    """A descriptive User-Agent as Wikimedia's policy asks: tool/version (what; contact)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("daad")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        ver = "dev"
    who = contact or "no contact configured: set DAAD_CONTACT"
    return f"daad/{ver} (anomaly-image dataset collector; {who}) python-requests/{__import__('requests').__version__}"
