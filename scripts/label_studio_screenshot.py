"""The screenshot of docs/annotation.md: a real Label Studio server with a batch that `annotate.py next
--label-studio` pushed, its data manager and one task, shot by a headless Chromium.

    python3 -m venv /tmp/shot && /tmp/shot/bin/pip install selenium      # and: apt-get install chromium chromium-driver
    /tmp/shot/bin/python scripts/label_studio_screenshot.py --project DIR --out docs/

DIR is an annotation project (e.g. the README's digits session after `init`); the server is started from
.venv-labelstudio (`make labelstudio`) in a temporary folder and stopped at the end.
"""

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="an annotation project with no batch waiting")
    parser.add_argument("--images", required=True, help="the project's image folder (served to Label Studio)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"))
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"), help="osal's Python")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    folder = tempfile.mkdtemp(prefix="label-studio-")
    email, password, token = "annotator@example.com", secrets.token_hex(8), secrets.token_hex(20)
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": folder, "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": os.path.dirname(os.path.abspath(args.images)),
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "COLLECT_ANALYTICS": "false"}
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen([os.path.join(ROOT, ".venv-labelstudio", "bin", "label-studio"), "start", "--no-browser",
                               "--internal-host", "127.0.0.1", "--port", str(args.port), "--username", email,
                               "--password", password, "--user-token", token],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/health", timeout=5)
                break
            except OSError:
                time.sleep(1)
        pushed = subprocess.run([args.python, os.path.join(ROOT, "src", "annotate.py"), "-p", args.project, "next",
                                 "--label-studio", "--label-studio-url", url, "--label-studio-token", token],
                                capture_output=True, text=True, cwd=ROOT)
        print(pushed.stdout, pushed.stderr, sep="\n")
        project_id = int(pushed.stdout.split("Label Studio project ")[1].split()[0])
        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options)
        try:
            browser.get(url + "/user/login/")
            browser.find_element(By.NAME, "email").send_keys(email)
            browser.find_element(By.NAME, "password").send_keys(password)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
            time.sleep(3)
            browser.get(f"{url}/projects/{project_id}/data")
            time.sleep(8)
            browser.save_screenshot(os.path.join(args.out, "annotation_label_studio_tasks.png"))
            browser.find_element(By.CSS_SELECTOR, ".dm-table__row-wrapper, .dm-table-row, [class*=row-wrapper]").click()
            time.sleep(6)
            browser.save_screenshot(os.path.join(args.out, "annotation_label_studio_task.png"))
        finally:
            browser.quit()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
