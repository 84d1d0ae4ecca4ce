"""A batch written three ways: a CSV to fill in, Label Studio tasks, and an HTML contact sheet."""

import base64
import csv
import html
import io
import json
import os

from PIL import Image

from osal.annotate.answers import CHOICE_NAME, IMAGE_NAME
from osal.annotate.project import UNKNOWN_NAME, AnnotationError
from osal.atomic import replace_folder, staging_folder

CSV_COLUMNS = ["item", "path", "suggestion", "known_probability", "answer"]
FILES = {"csv": "answers.csv", "tasks": "tasks.json", "config": "labeling_config.xml", "sheet": "contact_sheet.html"}


def batch_items(project, batch: dict):
    """(item number, global index, path, suggestion, known probability) in the order the strategy chose them."""
    return [(item, index, project.paths[index], suggestion, probability) for item, (index, suggestion, probability)
            in enumerate(zip(batch["indices"], batch["suggestions"], batch["known_probability"]), start=1)]


def write_batch(project, batch: dict) -> dict:
    """Write the batch's files into its directory, all of them or none; returns {kind: path}."""
    directory = project.batch_dir(batch["number"])
    items = batch_items(project, batch)
    paths = {kind: os.path.join(directory, name) for kind, name in FILES.items()}
    texts = {"csv": answer_sheet(items), "tasks": label_studio_tasks(project, batch, items),
             "config": labeling_config(project.class_names),
             "sheet": contact_sheet(project, batch, items, paths["csv"])}
    if os.path.exists(directory):
        # left by a `next` that failed before it recorded this batch: nobody was asked to answer it
        others = sorted(set(os.listdir(directory)) - set(FILES.values()))
        if others:
            raise AnnotationError(f"{directory} holds {others[0]}, which osal did not write, and batch "
                                  f"{batch['number']} is about to be written there; move it away and run next again")
    with staging_folder(directory) as staging:
        for kind, text in texts.items():
            with open(os.path.join(staging, FILES[kind]), "w", encoding="utf-8", newline="") as f:
                f.write(text)
        replace_folder(staging, directory)
    return paths


def csv_text(header, rows) -> str:
    """A CSV file's text: the header, then the rows (quoted only where needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def answer_sheet(items) -> str:
    return csv_text(CSV_COLUMNS, [(item, path, suggestion, f"{probability:.3f}", "")
                                  for item, _, path, suggestion, probability in items])


def label_studio_tasks(project, batch: dict, items) -> str:
    """Label Studio tasks: the image, its pool path and index, and the suggestion as a pre-annotation."""
    url = project.cfg.annotate.label_studio_image_url
    tasks = [{
        "id": index + 1,  # Label Studio ids start at 1
        "data": {IMAGE_NAME: url.format(path=path), "path": path, "osal_index": index, "osal_batch": batch["number"],
                 "known_probability": round(probability, 4)},
        "predictions": [{
            "model_version": f"osal batch {batch['number']}",
            "score": round(probability, 4),
            "result": [{"from_name": CHOICE_NAME, "to_name": IMAGE_NAME, "type": "choices",
                        "value": {"choices": [suggestion]}}],
        }],
    } for _, index, path, suggestion, probability in items]
    return json.dumps(tasks, indent=1) + "\n"


def labeling_config(class_names) -> str:
    choices = "\n".join(f'    <Choice value="{html.escape(name, quote=True)}"/>'
                        for name in list(class_names) + [UNKNOWN_NAME])
    return (f'<View>\n  <Image name="{IMAGE_NAME}" value="${IMAGE_NAME}"/>\n'
            f'  <Choices name="{CHOICE_NAME}" toName="{IMAGE_NAME}" choice="single" showInline="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def thumbnail(path, pixels: int):
    """(data URI of a PNG at most `pixels` on a side, width, height)."""
    with Image.open(path) as img:
        img = img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode)
        if max(img.size) > pixels:
            img.thumbnail((pixels, pixels))
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii"), img.size


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 16px 16px; color: #111; }
header { position: sticky; top: 0; background: #fff; padding: 10px 0 8px; border-bottom: 1px solid #ccc; z-index: 1; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.help { margin: 4px 0; font-size: 14px; max-width: 75em; }
code { background: #eee; padding: 0 3px; }
.tools { margin-top: 6px; font-size: 14px; }
.tools button { font-size: 14px; padding: 4px 10px; margin-right: 8px; }
#count { font-weight: bold; margin-right: 12px; }
.sheet { display: grid; grid-template-columns: repeat(auto-fill, minmax(%(card)dpx, 1fr)); gap: 10px; margin-top: 12px; }
.card { border: 2px solid #bbb; border-radius: 4px; padding: 6px; break-inside: avoid; page-break-inside: avoid; }
.card.done { border-color: #2a7; }
.card.suggest-unknown .sugg b { color: #b22; }
.top { display: flex; justify-content: space-between; align-items: baseline; }
.num { font-weight: bold; font-size: 16px; }
.path { font-family: monospace; font-size: 11px; word-break: break-all; color: #444; text-align: right; }
.frame { width: %(px)dpx; height: %(px)dpx; margin: 4px auto; display: flex; align-items: center;
         justify-content: center; background: #fff; border: 1px solid #ddd; }
.frame img { max-width: 100%%; max-height: 100%%; }
.frame img.small { width: 100%%; height: 100%%; object-fit: contain; image-rendering: pixelated; }
.sugg { font-size: 14px; white-space: nowrap; }
.sugg b { font-size: 16px; }
.known { display: flex; align-items: center; gap: 6px; font-size: 13px; margin: 1px 0 5px; white-space: nowrap; }
.bar { flex: 1; height: 6px; background: #ddd; }
.bar span { display: block; height: 100%%; background: #2a7; }
.choices { display: flex; flex-wrap: wrap; gap: 3px; }
.choices button { flex: 1 0 auto; font-size: 14px; padding: 3px 4px; border: 1px solid #999; background: #f7f7f7;
                  border-radius: 3px; cursor: pointer; }
.choices button.on { background: #2a7; color: #fff; border-color: #2a7; font-weight: bold; }
.answer { display: none; margin-top: 6px; border-bottom: 1px solid #777; height: 18px; font-size: 12px; color: #777; }
@media print { header { position: static; } .tools, .choices { display: none; } .answer { display: block; }
               .card { border: 1px solid #888; } }
"""

SCRIPT = """
const answers = {};
const choose = (item, answer) => {
  answers[item] = answer;
  const card = document.getElementById('card' + item);
  card.classList.add('done');
  card.querySelectorAll('.choices button').forEach(b => b.classList.toggle('on', b.dataset.answer === answer));
  const done = Object.keys(answers).length;
  document.getElementById('count').textContent = done + ' of ' + ITEMS.length + ' answered';
};
document.querySelectorAll('.choices button').forEach(b =>
  b.addEventListener('click', () => choose(Number(b.closest('.card').dataset.item), b.dataset.answer)));
document.getElementById('fill').addEventListener('click', () =>
  ITEMS.forEach(i => { if (!(i.item in answers)) choose(i.item, i.suggestion); }));
const quote = v => '"' + String(v).replace(/"/g, '""') + '"';
const csvText = () => [['item', 'path', 'suggestion', 'known_probability', 'answer']].concat(ITEMS.map(i =>
  [i.item, i.path, i.suggestion, i.known_probability.toFixed(3), answers[i.item] || '']))
  .map(r => r.map(quote).join(',')).join('\\n') + '\\n';
document.getElementById('save').addEventListener('click', () => {
  const left = ITEMS.length - Object.keys(answers).length;
  if (left && !confirm(left + ' images have no answer yet; the import will list them. Download anyway?')) return;
  const blob = new Blob([csvText()], {type: 'text/csv'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = FILE_NAME;
  link.click();
});
"""


def contact_sheet(project, batch: dict, items, csv_path) -> str:
    """Self-contained HTML, one card per image in the order queried: click answers and download them as the CSV.

    Thumbnails are embedded (the file works anywhere); small images are scaled up without smoothing.
    Printed, the buttons give way to an empty answer line.
    """
    a = project.cfg.annotate
    px = int(a.display_pixels)
    choices = list(project.class_names) + [UNKNOWN_NAME]
    allowed = ", ".join(f"<code>{html.escape(n)}</code>" for n in choices)
    buttons = "".join(f'<button data-answer="{html.escape(n, quote=True)}">{html.escape(n)}</button>' for n in choices)
    cards = []
    for item, index, path, suggestion, probability in items:
        uri, (w, h) = thumbnail(os.path.join(project.image_folder, path), int(a.thumbnail_pixels))
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
                       for item, _, path, suggestion, probability in items]).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>batch {batch['number']}: {len(items)} images</title>"
        f"<style>{STYLE % {'card': px + 64, 'px': px}}</style></head><body>\n<header>"
        f"<h1>Batch {batch['number']}: {len(items)} images to label</h1>\n"
        f"<p class=\"help\">Answer each image with one of {allowed}: anything that is none of the wanted classes is "
        "<code>unknown</code>. Click the answer under each image, then <i>Download</i>; or write the "
        f"answers into the <code>answer</code> column of <code>{html.escape(csv_path)}</code> (one row per card, "
        f"<code>item</code> = the card's number). Then run <code>{html.escape(command)}</code>.</p>\n"
        "<p class=\"help\">Cards come in the order the strategy chose them. <i>suggested</i> is the model's guess; "
        "<i>known</i> is the probability that the image shows a wanted class.</p>\n"
        f'<div class="tools"><span id="count">0 of {len(items)} answered</span>'
        '<button id="fill">Fill the unanswered with the suggestions</button>'
        f'<button id="save">Download batch_{batch["number"]:02d}_answers.csv</button></div></header>\n'
        "<div class=\"sheet\">\n" + "\n".join(cards) + "\n</div>\n"
        f"<script>const ITEMS = {data};\nconst FILE_NAME = 'batch_{batch['number']:02d}_answers.csv';\n"
        f"{SCRIPT}</script>\n</body></html>\n")
