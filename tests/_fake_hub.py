"""A local stand-in for the Hugging Face Hub: just enough of its HTTP API for ``create_repo`` and ``upload_folder``.

Point ``HF_ENDPOINT`` at :attr:`FakeHub.url` (before ``huggingface_hub`` is imported, e.g. in a subprocess) and the
real client creates repos, asks how to upload each file (``preupload``: always "regular", so no LFS or Xet), and
commits (NDJSON with base64 file contents), which the fake applies to an in-memory repo. Model-card YAML sent to
``/api/validate-yaml`` is accepted. Every request is recorded. Dataset repos added with :meth:`FakeHub.add_dataset`
can be read (repo info, file tree, paths-info, downloads), enough for ``datasets.load_dataset("<user>/<name>")``.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
import urllib.parse

_PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/?]+)")
_COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/?]+)")
_DATASET_API = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/?(?P<rest>.*)$")
_DATASET_FILE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/[^/]+/(?P<rest>.+)$")
DEFAULT_USER = "tester"


class FakeHub:
    """Threaded HTTP server holding ``repos[repo_id][path] = bytes`` and ``commits[repo_id] = [message, ...]``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.datasets: dict[str, dict[str, bytes]] = {}
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply_list(self, payload: list) -> None:
                self._reply(200, payload)

            def _reply(self, status: int, payload: dict | list) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                hub.requests.append(("POST", path))
                if path == "/api/repos/create":
                    request = json.loads(body)
                    repo_id = f"{request.get('organization') or DEFAULT_USER}/{request['name']}"
                    exists = repo_id in hub.repos
                    hub.repos.setdefault(repo_id, {})
                    hub.commits.setdefault(repo_id, [])
                    status = 409 if exists else 200
                    return self._reply(status, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
                if hub._serve_dataset(self, "POST", body):
                    return
                if path == "/api/validate-yaml":
                    return self._reply(200, {"errors": [], "warnings": []})
                if match := _PREUPLOAD.match(path):
                    if match["repo"] not in hub.repos:
                        return self._reply(404, {"error": f"Repository {match['repo']} not found"})
                    files = json.loads(body)["files"]
                    modes = [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                    return self._reply(200, {"files": modes})
                if match := _COMMIT.match(path):
                    repo = hub.repos.get(match["repo"])
                    if repo is None:
                        return self._reply(404, {"error": f"Repository {match['repo']} not found"})
                    message = ""
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            message = item["value"]["summary"]
                        elif item["key"] == "file":
                            repo[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        elif item["key"] == "deletedFile":
                            repo.pop(item["value"]["path"], None)
                        else:
                            return self._reply(
                                400, {"error": f"fake hub: unsupported commit item {item['key']!r}"}
                            )
                    hub.commits[match["repo"]].append(message)
                    oid = hashlib.sha1(
                        f"{match['repo']}{len(hub.commits[match['repo']])}".encode()
                    ).hexdigest()
                    return self._reply(
                        200, {"commitUrl": f"{hub.url}/{match['repo']}/commit/{oid}", "commitOid": oid}
                    )
                return self._reply(404, {"error": f"fake hub: no route for POST {path}"})

            def do_GET(self):  # noqa: N802 (http.server API)
                hub.requests.append(("GET", self.path))
                if hub._serve_dataset(self, "GET"):
                    return
                self._reply(404, {"error": f"fake hub: no route for GET {self.path}"})

            def do_HEAD(self):  # noqa: N802 (http.server API)
                hub.requests.append(("HEAD", self.path))
                if hub._serve_dataset(self, "HEAD"):
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- dataset repos (read side): what ``datasets.load_dataset("<user>/<name>")`` asks for --------------------
    def add_dataset(self, repo_id: str, files: dict[str, bytes]) -> None:
        """A dataset repo ``repo_id`` holding ``files`` (repo path -> bytes), readable through the Hub API."""
        self.datasets[repo_id] = dict(files)

    def _dataset_sha(self, repo_id: str) -> str:
        return hashlib.sha1(repr(sorted(self.datasets[repo_id])).encode()).hexdigest()

    def _entry(self, repo_id: str, path: str) -> dict:
        files = self.datasets[repo_id]
        if path in files:
            data = files[path]
            return {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}

    def _tree(self, repo_id: str, folder: str, recursive: bool) -> list[dict]:
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        paths = set()
        for name in self.datasets[repo_id]:
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            for depth in range(1, len(parts) + 1 if recursive else 2):
                paths.add(prefix + "/".join(parts[:depth]))
        return [self._entry(repo_id, path) for path in sorted(paths)]

    def _serve_dataset(self, handler, method: str, body: bytes = b"") -> bool:
        """Answer a dataset read request (repo info, tree, paths-info, file download); False if it is none."""
        url = urllib.parse.urlsplit(handler.path)
        path, query = urllib.parse.unquote(url.path), urllib.parse.parse_qs(url.query)
        match = _DATASET_API.match(path) or _DATASET_FILE.match(path)
        if match is None or match["repo"] not in self.datasets:
            if match is not None:
                handler._reply(404, {"error": f"Repository {match['repo']} not found"})
                return True
            return False
        repo_id, sha = match["repo"], self._dataset_sha(match["repo"])
        rest = match["rest"] or ""
        if match.re is _DATASET_FILE:
            data = self.datasets[repo_id].get(rest)
            if data is None:
                handler.send_response(404)
                handler.send_header("X-Error-Code", "EntryNotFound")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return True
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            handler.send_header("X-Repo-Commit", sha)
            handler.end_headers()
            if method == "GET":
                handler.wfile.write(data)
            return True
        if rest == "" or rest.startswith("revision/"):
            siblings = [{"rfilename": name} for name in sorted(self.datasets[repo_id])]
            info = {
                "id": repo_id, "_id": sha[:24], "sha": sha, "private": False, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": [], "cardData": {},
                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                "siblings": siblings,
            }  # fmt: skip
            handler._reply(200, info)
            return True
        if rest.startswith("tree/"):
            folder = rest.split("/", 2)[2] if rest.count("/") >= 2 else ""
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            handler._reply_list(self._tree(repo_id, folder, recursive))
            return True
        if rest.startswith("paths-info/") and method == "POST":
            fields = urllib.parse.parse_qs(body.decode())
            if not fields and body.startswith(b"{"):
                fields = {"paths": json.loads(body)["paths"]}
            wanted = fields.get("paths", [])
            known = set(self.datasets[repo_id])
            folders = {"/".join(name.split("/")[:i]) for name in known for i in range(1, name.count("/") + 1)}
            handler._reply_list([self._entry(repo_id, p) for p in wanted if p in known or p in folders])
            return True
        handler._reply(404, {"error": f"fake hub: no route for {method} {path}"})
        return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
