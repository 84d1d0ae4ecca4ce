"""A batch written three ways: a CSV to fill in, Label Studio tasks, and an HTML contact sheet."""

import base64
import csv
import functools
import html
import importlib.resources
import io
import json
import os
import string
import urllib.parse
from typing import Iterable, Sequence

from PIL import Image

from osal.annotate.answers import CHOICE_NAME, IMAGE_NAME
from osal.annotate.project import UNKNOWN_NAME, AnnotationError, Project
from osal.atomic import replace_folder, staging_folder
from osal.errors import brief, machine_reason

CSV_COLUMNS = ["item", "path", "suggestion", "known_probability", "answer"]
FILES = {"csv": "answers.csv", "tasks": "tasks.json", "config": "labeling_config.xml", "sheet": "contact_sheet.html"}
Item = tuple[int, int, str, str, float]  # (item number, global index, path, suggestion, known probability)


def batch_items(project: Project, batch: dict) -> list[Item]:
    """(item number, global index, path, suggestion, known probability) in the order the strategy chose them."""
    return [(item, index, project.paths[index], suggestion, probability) for item, (index, suggestion, probability)
            in enumerate(zip(batch["indices"], batch["suggestions"], batch["known_probability"]), start=1)]


def write_batch(project: Project, batch: dict) -> dict:
    """Write the batch's files into its directory, all of them or none; returns {kind: path}."""
    directory = project.batch_dir(batch["number"])
    items = batch_items(project, batch)
    paths = {kind: os.path.join(directory, name) for kind, name in FILES.items()}
    texts = {"csv": answer_sheet(items), "tasks": label_studio_tasks(project, batch, items),
             "config": labeling_config(project.class_names),
             "sheet": contact_sheet(project, batch, items, paths["csv"])}
    check_batch_folder(project, batch["number"])
    with staging_folder(directory) as staging:
        for kind, text in texts.items():
            with open(os.path.join(staging, FILES[kind]), "w", encoding="utf-8", newline="") as f:
                f.write(text)
        replace_folder(staging, directory)
    return paths


def check_batch_folder(project: Project, number: int) -> None:
    """Refuse, before `next` trains, a place for batch `number`'s folder that holds something osal did not write
    there: a file instead of the folder (or of batches/), or a folder with other files in it."""
    directory = project.batch_dir(number)
    for path in (os.path.dirname(directory), directory):
        if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
            raise AnnotationError(f"{path} is a file or a link, not a folder, and batch {number}'s files are about to "
                                  "be written there; move it away and run next again")
    if os.path.exists(directory):
        # left by a `next` that failed before it recorded this batch: nobody was asked to answer it
        others = sorted(set(os.listdir(directory)) - set(FILES.values()))
        if others:
            raise AnnotationError(f"{directory} holds {others[0]}, which osal did not write, and batch {number} is "
                                  "about to be written there; move it away and run next again")


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A CSV file's text: the header, then the rows (quoted only where needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def answer_sheet(items: Sequence[Item]) -> str:
    return csv_text(CSV_COLUMNS, [(item, path, suggestion, f"{probability:.3f}", "")
                                  for item, _, path, suggestion, probability in items])


def label_studio_tasks(project: Project, batch: dict, items: Sequence[Item]) -> str:
    """Label Studio tasks: the image, its pool path and index, and the suggestion as a pre-annotation."""
    url = project.cfg.annotate.label_studio_image_url
    tasks = [{
        "id": index + 1,  # Label Studio ids start at 1
        "data": {IMAGE_NAME: image_url(url, project.image_folder, path), "path": path, "osal_index": index,
                 "osal_batch": batch["number"], "known_probability": round(probability, 4)},
        "predictions": [{
            "model_version": f"osal batch {batch['number']}",
            "score": round(probability, 4),
            "result": [{"from_name": CHOICE_NAME, "to_name": IMAGE_NAME, "type": "choices",
                        "value": {"choices": [suggestion]}}],
        }],
    } for _, index, path, suggestion, probability in items]
    return json.dumps(tasks, indent=1) + "\n"


def image_url(template: str, image_folder: str, path: str) -> str:
    """A task's image URL: `template` with {path} (inside the image folder) and {folder} (the folder's name),
    each URL-quoted (a file name may hold spaces or '#')."""
    folder = os.path.basename(os.path.normpath(image_folder))
    return template.format(path=urllib.parse.quote(path), folder=urllib.parse.quote(folder))


def labeling_config(class_names: Sequence[str]) -> str:
    choices = "\n".join(f'    <Choice value="{html.escape(name, quote=True)}"/>'
                        for name in list(class_names) + [UNKNOWN_NAME])
    return (f'<View>\n  <Image name="{IMAGE_NAME}" value="${IMAGE_NAME}"/>\n'
            f'  <Choices name="{CHOICE_NAME}" toName="{IMAGE_NAME}" choice="single" showInline="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def thumbnail(path: str, pixels: int) -> tuple[str, tuple[int, int]]:
    """(data URI of a PNG at most `pixels` on a side, width, height)."""
    with Image.open(path) as img:
        img = img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode)
        if max(img.size) > pixels:
            img.thumbnail((pixels, pixels))
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii"), img.size


@functools.cache
def page_template(name: str) -> string.Template:
    """A page template from the package's templates/ folder; $-placeholders, `$$` for a literal dollar sign."""
    text = (importlib.resources.files("osal.annotate") / "templates" / name).read_text(encoding="utf-8")
    return string.Template(text)


def contact_sheet(project: Project, batch: dict, items: Sequence[Item], csv_path: str) -> str:
    """Self-contained HTML, one card per image in the order queried: click answers and download them as the CSV.

    Thumbnails are embedded (the file works anywhere); small images are scaled up without smoothing.
    Printed, the buttons give way to an empty answer line. The page around the cards, its CSS and script
    included, is templates/contact_sheet.html.
    """
    a = project.cfg.annotate
    px = int(a.display_pixels)
    choices = list(project.class_names) + [UNKNOWN_NAME]
    allowed = ", ".join(f"<code>{html.escape(n)}</code>" for n in choices)
    buttons = "".join(f'<button data-answer="{html.escape(n, quote=True)}">{html.escape(n)}</button>' for n in choices)
    cards = []
    for item, index, path, suggestion, probability in items:
        image = os.path.join(project.image_folder, path)
        try:
            uri, (w, h) = thumbnail(image, int(a.thumbnail_pixels))
        except (OSError, Image.DecompressionBombError) as error:  # changed in the image folder since init
            raise AnnotationError(f"cannot read image {image} for batch {batch['number']}'s contact sheet "
                                  f"({machine_reason(error) or brief(error)}); put the image the project was created "
                                  "with back in the image folder and run next again") from None
        small = ' class="small"' if max(w, h) < px else ""
        unknown = " suggest-unknown" if suggestion == UNKNOWN_NAME else ""
        cards.append(
            f'<div class="card{unknown}" id="card{item}" data-item="{item}">'
            f'<div class="top"><span class="num">#{item}</span><span class="path">{html.escape(path)}</span></div>'
            f'<div class="frame"><img{small} src="{uri}" alt="{html.escape(path)}"></div>'
            f'<div class="sugg">suggested <b>{html.escape(suggestion)}</b></div>'
            f'<div class="known"><div class="bar"><span style="width:{100 * probability:.0f}%"></span></div>'
            f'known {probability:.2f}</div>'
            f'<div class="choices">{buttons}</div><div class="answer">answer:</div></div>')
    command = f"python src/annotate.py -p {project.directory} import <the answers file>"
    data = json.dumps([{"item": item, "path": path, "suggestion": suggestion, "known_probability": probability}
                       for item, _, path, suggestion, probability in items])
    # inside the page's <script>, no file name may open or close a tag or a comment: < > & as JSON escapes
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return page_template("contact_sheet.html").substitute(
        number=batch["number"], count=len(items), card=px + 64, px=px, allowed=allowed, csv_path=html.escape(csv_path),
        command=html.escape(command), file_name=f"batch_{batch['number']:02d}_answers.csv", cards="\n".join(cards),
        items=data)
