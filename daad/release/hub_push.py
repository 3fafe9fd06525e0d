"""Upload one published DAAD version to the Hugging Face Hub: one commit, then tag `vX.Y.Z`.

Why one commit per version: a tag must point at a state of the repo that is exactly one
version folder, so the commit replaces the whole tree (shards of the previous version that
are gone are deleted in the same commit) and `load_dataset(repo, config, revision="vX.Y.Z")`
reproduces it forever. Unchanged shards cost nothing to re-upload: the Hub's storage
deduplicates content it already has.

Order matters for access control: the repo is created (private if asked) and gated
*before* any data lands, so there is never a moment where gated data is public. A tag
that already exists is never moved: the push stops before uploading anything.

The token comes from where `huggingface_hub` always looks (HF_TOKEN, the saved login)
unless one is passed; it is never printed or logged by daad. `HF_ENDPOINT` points the
client at another Hub (a team's mirror, or the tests' local server); for any endpoint but
huggingface.co the Xet upload protocol is switched off (HF_HUB_DISABLE_XET=1), because
only the Hugging Face Hub serves it and the client would otherwise fail on a plain
Hub-compatible server. The access the summary prints is what the Hub reports after the
push (a repo that was private stays private when `--private` is not given).

A local release (manifest `"redistributable": false`, written by `daad publish --local`)
holds images whose licences forbid redistribution: it is refused before any request.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from daad.release.publish import PublishError, load_manifest, version_name

REPO_TYPE = "dataset"
HF_HUB = "https://huggingface.co"


def xet_off_for_other_hubs() -> bool:
    """Set HF_HUB_DISABLE_XET=1 when HF_ENDPOINT is not the Hugging Face Hub (unless the user set it); True if off."""
    endpoint = os.environ.get("HF_ENDPOINT", HF_HUB).rstrip("/")
    if endpoint in (HF_HUB, "https://hf.co") or "HF_HUB_DISABLE_XET" in os.environ:
        return os.environ.get("HF_HUB_DISABLE_XET", "").lower() in ("1", "true", "yes", "on")
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    if "huggingface_hub.constants" in sys.modules:  # already imported (e.g. by `datasets` during publish): it read the variable then
        from huggingface_hub import constants

        constants.HF_HUB_DISABLE_XET = True
    return True


@dataclass
class PushResult:
    repo_id: str
    tag: str
    commit: str
    url: str
    files: int
    gated: str
    private: bool

    def summary(self) -> str:
        access = ("private" if self.private else "public") + (f", gated ({self.gated})" if self.gated else "")
        return f"pushed {self.files} files to {self.url} ({access}): commit {self.commit[:12]}, tag {self.tag}"


def _changes_line(folder: Path) -> str:
    p = folder / "changelog.json"
    if not p.is_file():
        return ""
    c = json.loads(p.read_text(encoding="utf-8"))
    if c.get("previous") is None:
        return f"First version: {len(c.get('added', []))} samples."
    return (f"Since {c['previous']}: {len(c['added'])} added, {len(c['removed'])} removed, "
            f"{len(c['relabelled'])} relabelled, {len(c['mask_changed'])} mask changed.")


def push_version(
    folder: Path | str,
    repo_id: str,
    *,
    private: bool = False,
    gated: str | None = None,
    token: str | None = None,
) -> PushResult:
    """Push the version folder `folder` (written by `daad.release.publish.publish`) to `repo_id`.

    Args:
        folder: a version folder (`<out>/vX.Y.Z`).
        repo_id: `<org>/<name>` of the dataset repo; created when missing.
        private: create the repo private, or make an existing one private.
        gated: "auto" / "manual" / "" (leave the gate alone); None uses the version's
            manifest, which records what its sources' licences ask for.
        token: a Hub token; None lets huggingface_hub find it (HF_TOKEN, saved login).
    Returns:
        PushResult with the commit id and the tag.
    """
    xet_off_for_other_hubs()
    from huggingface_hub import HfApi

    folder = Path(folder)
    manifest = load_manifest(folder / "manifest.json")
    if manifest.get("redistributable", True) is False:
        raise PublishError(f"{folder} is a local release for private use only (it holds images whose licence forbids "
                           "redistribution; see its README.md): it cannot be pushed; publish without --local to push")
    if not (folder / "README.md").is_file():
        raise PublishError(f"{folder}: no README.md; push a folder written by `daad publish`")
    tag = version_name(str(manifest["version"]))
    gate = manifest.get("gated", "") if gated is None else gated
    if gate and gate not in ("auto", "manual"):
        raise PublishError(f"gated must be 'auto', 'manual' or '' (none), not {gate!r}")

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type=REPO_TYPE, private=private or None, exist_ok=True)
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    if any(t.name == tag for t in refs.tags):
        raise PublishError(f"{repo_id} already has tag {tag}: a published version is never overwritten (publish a new version)")
    if gate or private:
        api.update_repo_settings(repo_id, repo_type=REPO_TYPE, gated=gate or None, private=True if private else None)
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type=REPO_TYPE,
        folder_path=folder,
        commit_message=f"DAAD {tag}",
        commit_description=_changes_line(folder),
        delete_patterns="*",  # the commit's tree is exactly this version (.gitattributes is kept)
    )
    api.create_tag(repo_id, repo_type=REPO_TYPE, tag=tag, revision=commit.oid, tag_message=f"DAAD {tag}")
    info = api.dataset_info(repo_id)  # what the Hub says now, not what was asked
    return PushResult(repo_id=repo_id, tag=tag, commit=commit.oid, url=str(url), files=files,
                      gated=info.gated if isinstance(info.gated, str) else "", private=bool(info.private))
