"""A local stand-in for the Hugging Face Hub: just enough of its HTTP API for ``create_repo`` and ``upload_folder``.

Point ``HF_ENDPOINT`` at :attr:`FakeHub.url` (before ``huggingface_hub`` is imported, e.g. in a subprocess) and the
real client creates repos, asks how to upload each file (``preupload``: always "regular", so no LFS or Xet), and
commits (NDJSON with base64 file contents), which the fake applies to an in-memory repo. Model-card YAML sent to
``/api/validate-yaml`` is accepted. Every request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading

_PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/?]+)")
_COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/?]+)")
DEFAULT_USER = "tester"


class FakeHub:
    """Threaded HTTP server holding ``repos[repo_id][path] = bytes`` and ``commits[repo_id] = [message, ...]``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: dict) -> None:
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
                self._reply(404, {"error": f"fake hub: no route for GET {self.path}"})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
