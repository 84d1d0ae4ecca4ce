"""A real Label Studio server for the tests: `make labelstudio` installs it into .venv-labelstudio; this starts
it on 127.0.0.1 with its own data directory under a temporary folder, an admin user and an API token, and
stops it at the end, also on failure.

Without the environment, or when the server does not answer, the tests that need it are skipped, unless
OSAL_REQUIRE_LABEL_STUDIO=1 (set by .ci/run), which makes that a failure: CI never passes without them.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT

LABEL_STUDIO = ROOT / ".venv-labelstudio" / "bin" / "label-studio"
START_TIMEOUT = 420  # its first start migrates a fresh SQLite database: about a minute here, more on a busy machine


def unavailable(why: str) -> None:
    if os.environ.get("OSAL_REQUIRE_LABEL_STUDIO") == "1":
        pytest.fail(f"Label Studio is required here (OSAL_REQUIRE_LABEL_STUDIO=1) but {why}")
    pytest.skip(f"{why}; `make labelstudio` installs it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, folder, document_root):
        self.folder, self.document_root, self.port = folder, document_root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(20)  # a legacy token, given to the admin user at start
        self.log_path = folder / "server.log"
        self.process = None

    def start(self) -> None:
        if not LABEL_STUDIO.exists():
            unavailable(f"{LABEL_STUDIO.relative_to(ROOT)} does not exist")
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.folder / "data"),
               "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
               "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
               "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false"}
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
             "--username", "annotator@example.com", "--password", secrets.token_hex(12), "--user-token", self.token],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.stop()
                unavailable(f"the server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.api("GET", "/api/projects?page_size=1")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(2)
        self.stop()
        unavailable(f"the server did not answer within {START_TIMEOUT} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def fetch(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Token {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def api(self, method: str, path: str, body=None):
        """The REST API as a scripted annotator uses it (osal's own client is not used here)."""
        request = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory, digits):
    """The server, serving the images of the `digits` fixture (annotation_helpers) as docs/annotation.md says:
    the document root is the folder that holds the image folder."""
    folder, _ = digits
    server = Server(tmp_path_factory.mktemp("label-studio"), document_root=folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
