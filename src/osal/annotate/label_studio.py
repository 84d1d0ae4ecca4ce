"""A Label Studio server, over its REST API only: osal pushes a batch's tasks to a project and pulls what the
annotators answered. Label Studio runs in an environment of its own (`make labelstudio`); this module needs
nothing but the standard library.

The server's URL and API token come from the command line or the environment (LABEL_STUDIO_URL,
LABEL_STUDIO_API_KEY) and are never written into the annotation project; the project keeps only the id of
its Label Studio project (label_studio.json), which is no secret.
"""

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from osal.annotate.answers import export_problem, json_kind
from osal.annotate.batch_files import FILES, labeling_config
from osal.annotate.project import AnnotationError, Project, shown
from osal.annotate.project_files import RESTORE, read_json
from osal.atomic import atomic_write_text
from osal.stored import DamagedFileError

URL_VARIABLE, TOKEN_VARIABLE = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
LINK_FILE = "label_studio.json"  # in the annotation project: {"project": <Label Studio project id>}
EXPORT_FILE = "label_studio_export.json"  # in a batch's folder: what was pulled from Label Studio
TIMEOUT = 60.0
# what to do when the URL answers, but not as Label Studio does (a proxy's login page, another web server)
NOT_LABEL_STUDIO = (f"check that --label-studio-url (or {URL_VARIABLE}) is Label Studio's own address, e.g. "
                    "http://localhost:8080, not another server's")

log = logging.getLogger(__name__)


class LabelStudio:
    """One Label Studio server, authenticated with a personal access token (a JWT, exchanged for a short-lived
    access token) or a legacy token."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None):
        url = url or os.environ.get(URL_VARIABLE)
        token = token or os.environ.get(TOKEN_VARIABLE)
        if not url:
            raise AnnotationError("no Label Studio URL: give --label-studio-url http://HOST:PORT or set "
                                  f"{URL_VARIABLE}")
        if not token:
            raise AnnotationError(f"no Label Studio API token: give --label-studio-token TOKEN or set "
                                  f"{TOKEN_VARIABLE} (Label Studio: Account & Settings, Personal Access Token)")
        if not urllib.parse.urlparse(url).scheme.startswith("http"):
            raise AnnotationError(f"Label Studio URL {url!r} must start with http:// or https://, e.g. "
                                  "http://localhost:8080")
        self.url, self.token = url.rstrip("/"), token.strip()
        self._authorization: Optional[str] = None

    # -- HTTP ------------------------------------------------------------------------------
    def authorization(self) -> str:
        if self._authorization is None:
            if self.token.count(".") == 2:  # a personal access token is a JWT refresh token
                reply = self.reply_object("POST", "/api/token/refresh/", {"refresh": self.token}, {"access": str},
                                          authorize=False)
                self._authorization = f"Bearer {reply['access']}"
            else:
                self._authorization = f"Token {self.token}"
        return self._authorization

    def request(self, method: str, path: str, body: Any = None, authorize: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if authorize:
            headers["Authorization"] = self.authorization()
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            if error.code in (401, 403):
                raise AnnotationError(f"Label Studio at {self.url} refused the API token ({error.code}); copy the "
                                      f"token from Account & Settings into --label-studio-token or "
                                      f"{TOKEN_VARIABLE}") from None
            if error.code == 404:
                raise AnnotationError(f"Label Studio at {self.url} has no {path.split('?')[0]} (404); check the "
                                      "project id in the annotation project's label_studio.json") from None
            raise AnnotationError(f"Label Studio at {self.url} answered {method} {path.split('?')[0]} with "
                                  f"{error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AnnotationError(f"cannot reach Label Studio at {self.url} ({reason}); start it (`make "
                                  "labelstudio` installs it) or fix --label-studio-url") from None
        if not raw:
            return None
        try:
            return json.loads(raw.decode())
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError too
            what = ("an HTML page" if raw.lstrip()[:1] == b"<" else "JSON nested too deeply to read"
                    if isinstance(error, RecursionError) else f"text that is not JSON ({raw[:40]!r})")
            raise AnnotationError(f"Label Studio at {self.url} answered {method} {path.split('?')[0]} with {what}, "
                                  f"which Label Studio never sends; {NOT_LABEL_STUDIO}") from None

    def reply_object(self, method: str, path: str, body: Any = None, fields: Optional[dict] = None,
                     authorize: bool = True) -> dict:
        """The JSON object Label Studio answers with, holding `fields` ({name: type}); anything else is one
        sentence, before osal acts on it."""
        reply = self.request(method, path, body, authorize)
        fields = fields or {}
        if not isinstance(reply, dict):
            what = json_kind(reply)
        else:  # a bool is an int to Python, never an id to Label Studio
            wrong = [name for name, kind in fields.items()
                     if not isinstance(reply.get(name), kind) or isinstance(reply.get(name), bool)]
            what = f"a JSON object with no usable {wrong[0]!r}" if wrong else None
        if what is not None:
            expected = "an object" + (f" with {', '.join(map(repr, fields))}" if fields else "")
            raise AnnotationError(f"Label Studio at {self.url} answered {method} {path.split('?')[0]} with {what}, "
                                  f"where Label Studio sends {expected}; {NOT_LABEL_STUDIO}")
        return reply

    # -- what osal does with it ----------------------------------------------------------------
    def create_project(self, title: str, label_config: str) -> int:
        reply = self.reply_object("POST", "/api/projects", {"title": title, "label_config": label_config}, {"id": int})
        return reply["id"]

    def project_title(self, project_id: int) -> str:
        return str(self.reply_object("GET", f"/api/projects/{int(project_id)}", fields={"id": int}).get("title"))

    def add_local_storage(self, project_id: int, folder: str) -> None:
        """Let the project show images of `folder` through Label Studio's local-files serving (it refuses to serve
        a file under no storage of the project)."""
        self.request("POST", "/api/storages/localfiles", {"project": int(project_id), "path": folder,
                                                          "title": "osal images", "use_blob_urls": False})

    def import_tasks(self, project_id: int, tasks: list) -> int:
        # Label Studio numbers its tasks itself: osal's own `id` would collide across batches
        tasks = [{k: v for k, v in task.items() if k != "id"} for task in tasks]
        reply = self.request("POST", f"/api/projects/{int(project_id)}/import", tasks)
        count = reply.get("task_count") if isinstance(reply, dict) else None
        return count if isinstance(count, int) else len(tasks)

    def export_tasks(self, project_id: int) -> list:
        """Every task of the project with its annotations, as Label Studio's JSON export writes them; anything
        else is refused whole, before any of it is written or applied."""
        query = "exportType=JSON&download_all_tasks=true"
        tasks = self.request("GET", f"/api/projects/{int(project_id)}/export?{query}")
        problem = export_problem(tasks)
        if problem:
            raise AnnotationError(f"Label Studio at {self.url} sent an export of project {project_id} that is not "
                                  f"Label Studio's JSON export ({problem}), so nothing was applied; {NOT_LABEL_STUDIO}")
        return tasks


def read_link(project_directory: str) -> Optional[int]:
    """The Label Studio project id the annotation project keeps, or None; it becomes part of the API's URLs."""
    path = os.path.join(project_directory, LINK_FILE)
    if not os.path.exists(path):
        return None
    fix = "correct it to {\"project\": ID}, or move it away and give --label-studio-project ID"
    link = read_json(path, fix)
    project_id = link.get("project") if isinstance(link, dict) else None
    if type(project_id) is not int or project_id < 1:
        raise DamagedFileError(f"{path} does not hold a Label Studio project id as osal writes it; {fix}")
    return project_id


def write_link(project_directory: str, project_id: int) -> None:
    atomic_write_text(os.path.join(project_directory, LINK_FILE), json.dumps({"project": int(project_id)}) + "\n")


def connect(project: Project, url: Optional[str], token: Optional[str], project_id: Optional[int] = None
            ) -> tuple[LabelStudio, Optional[int]]:
    """The server and this annotation project's Label Studio project (None: not created yet), checked before any
    training so that a wrong URL, token or id costs nothing."""
    server = LabelStudio(url, token)
    linked = project_id if project_id is not None else read_link(project.directory)
    if linked is not None:
        server.project_title(linked)  # raises with one sentence when the id or the token is wrong
    else:
        # the token works, and the URL is Label Studio's: its paginated list of projects
        server.reply_object("GET", "/api/projects?page_size=1", fields={"results": list})
    return server, linked


def push_batch(project: Project, server: LabelStudio, linked: Optional[int], batch: dict) -> int:
    """Send `batch`'s tasks (its tasks.json) to the Label Studio project, creating it (with osal's labeling config)
    the first time; returns the Label Studio project id."""
    path = os.path.join(project.batch_dir(batch["number"]), FILES["tasks"])
    tasks = read_json(path)  # read before anything is sent: the file may have been edited since `next` wrote it
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise DamagedFileError(f"{path} is not the list of Label Studio tasks osal wrote; {RESTORE}")
    if linked is None:
        title = f"osal {os.path.basename(project.directory)}"
        linked = server.create_project(title, labeling_config(project.class_names))
        if project.cfg.annotate.label_studio_image_url.startswith("/data/local-files/"):
            try:
                server.add_local_storage(linked, project.image_folder)
            except AnnotationError as error:  # the tasks still arrive; only their images do not show
                log.warning("Label Studio will not show the images (%s); start it with "
                            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=%s, "
                            "or set annotate.label_studio_image_url to where the images are served", error,
                            os.path.dirname(os.path.normpath(project.image_folder)))
    write_link(project.directory, linked)
    server.import_tasks(linked, tasks)
    return linked


def pull_batch(project: Project, server: LabelStudio, linked: Optional[int], batch: dict) -> str:
    """Label Studio's export of `batch`'s tasks, written beside the batch's other files (label_studio_export.json)
    so that the import reads a file as it does for a downloaded export; returns its path."""
    if linked is None:
        raise AnnotationError(f"{shown(project.directory)} has no Label Studio project yet; push a batch with "
                              "`annotate.py next --label-studio` first, or give --label-studio-project ID")
    tasks = [task for task in server.export_tasks(linked)
             if (task.get("data") or {}).get("osal_batch") == batch["number"]]
    if not tasks:
        raise AnnotationError(f"Label Studio project {linked} at {server.url} holds no task of batch "
                              f"{batch['number']}; push it with `annotate.py push --label-studio`")
    path = os.path.join(project.batch_dir(batch["number"]), EXPORT_FILE)
    atomic_write_text(path, json.dumps(tasks, indent=1) + "\n")
    return path
