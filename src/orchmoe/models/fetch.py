"""`orchmoe fetch-base`: download a hub base once, on a machine with internet, into models/<exp>/<base>.

GPU jobs then load the local folder (no download on compute nodes, every job the same files). The folder gets a
`fetch.json` record: hub id, the revision asked for, the commit it resolved to, and the md5 of every file, so a run's
provenance names the exact weights. The folder appears whole or not at all (written beside it, then renamed).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from orchmoe.errors import ConfigError
from orchmoe.io import atomic_path, md5_file, write_json

from .loading import hub_access, hub_id, hub_options

RECORD = "fetch.json"


def _download(repo_id: str, revision: str | None, dest: Path) -> str | None:
    """Snapshot of repo_id at revision into dest; returns the commit it resolved to (None if unknown)."""
    from huggingface_hub import HfApi, snapshot_download

    hub_access(repo_id, revision, use_cache=False)  # a bad id or no network: one line naming it, not retries
    commit = HfApi().model_info(repo_id, revision=revision).sha  # resolve first: the files then match the record
    snapshot_download(repo_id, revision=commit or revision, local_dir=dest)
    return commit


def fetch_base(spec: dict, out_dir) -> Path:
    """Fetch the base a workflow base entry names ("path" or "name": a hub id or a local folder) into out_dir."""
    source = spec.get("name") or spec.get("path")
    if not isinstance(source, str) or not source:
        raise ConfigError("fetch-base: the spec needs 'path' (or 'name'): a hub id or a model folder")
    options = hub_options(spec)
    out = Path(out_dir)
    wanted = {"hub_id": source, "revision": options.get("revision")}
    record = out / RECORD
    if record.is_file():
        import json

        done = json.loads(record.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return out  # downloaded once already: the same id and revision
    with atomic_path(out) as tmp:
        local = Path(source).expanduser()  # as load_base: config paths reach commands quoted, unexpanded
        if local.is_dir():
            if options.get("revision"):
                raise ConfigError(f"fetch-base: revision={options['revision']!r} needs a hub id, not the folder {local}")
            shutil.copytree(local, tmp)
            commit = None
        else:
            commit = _download(hub_id(source), options.get("revision"), tmp)  # hub_id: or "base folder not found"
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        if not (tmp / "config.json").is_file() and not list(tmp.glob("*.gguf")):
            raise ConfigError(f"fetch-base: {source} holds neither config.json nor a .gguf file")
        files = {p.relative_to(tmp).as_posix(): md5_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json(tmp / RECORD, {**wanted, "commit": commit, "trust_remote_code": "trust_remote_code" in options,
                                  "md5": files})
    return out
