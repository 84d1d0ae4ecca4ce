"""`python src/annotate.py COMMAND`: open-set annotation with a person as the oracle (see docs/annotation.md)."""

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from osal.errors import OsalError

if TYPE_CHECKING:  # imported where used at run time: `annotate.py --help` answers without loading torch
    from osal.annotate.project import Project

log = logging.getLogger("osal")

EPILOG = """a session:
  annotate.py -p PROJECT init --images DIR --classes cat,dog --labels initial.csv [key=value ...]
  annotate.py -p PROJECT next             # train, choose a batch, write batches/batch_NN/answers.csv ...
  annotate.py -p PROJECT import FILE      # the filled answers.csv, or a Label Studio JSON export
  annotate.py -p PROJECT next --label-studio        # ... and push the batch to a Label Studio server
  annotate.py -p PROJECT import --from-label-studio # pull its answers from there
  annotate.py -p PROJECT status
  annotate.py -p PROJECT export [--to DIR]
  annotate.py -p PROJECT predict IMAGE_OR_FOLDER ... [--out predictions.csv]"""


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="annotate.py", description=__doc__.split(":", 1)[1].strip(),
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("-p", "--project", default="annotation", help="the project directory (default: annotation)")
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument("-p", "--project", default=argparse.SUPPRESS, help="the project directory")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", parents=[project], help="create a project from a folder of images")
    init.add_argument("--images", required=True, help="the folder of unlabeled images (searched recursively)")
    init.add_argument("--classes", required=True, help="the wanted classes, comma-separated; all else is `unknown`")
    init.add_argument("--labels", required=True, help="a CSV with columns path,class: the initial labels")
    init.add_argument("overrides", nargs="*", help="config overrides on conf/annotate.yaml, e.g. al.query_size=20 "
                      "dataset.channels=1 model=resnet18 trainer=gpu")
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--label-studio-url", default=None, help="the Label Studio server, e.g. http://localhost:8080 "
                        "(default: $LABEL_STUDIO_URL); never stored in the project")
    server.add_argument("--label-studio-token", default=None, help="its API token (default: $LABEL_STUDIO_API_KEY); "
                        "never stored in the project")
    server.add_argument("--label-studio-project", type=int, default=None, help="the Label Studio project id (default: "
                        "the one the first push created, kept in PROJECT/label_studio.json)")
    nxt = commands.add_parser("next", parents=[project, server], help="train on the labels so far and write the next "
                              "batch")
    nxt.add_argument("--label-studio", action="store_true", help="also push the batch's tasks to Label Studio")
    commands.add_parser("push", parents=[project, server], help="push the waiting batch to Label Studio again")
    imp = commands.add_parser("import", parents=[project, server], help="apply a filled answers.csv or Label Studio "
                              "export, or pull the answers from Label Studio")
    imp.add_argument("file", nargs="?", default=None, help="answers.csv or a Label Studio JSON export")
    imp.add_argument("--from-label-studio", action="store_true", help="pull the waiting batch's answers from the "
                     "Label Studio project instead of reading a file")
    st = commands.add_parser("status", parents=[project], help="counts, precision per batch, known images left")
    st.add_argument("--json", action="store_true", help="print the numbers as JSON")
    ex = commands.add_parser("export", parents=[project], help="labels as CSV and ImageFolder tree, and the models")
    ex.add_argument("--to", default=None, help="destination directory (default: PROJECT/export)")
    pr = commands.add_parser("predict", parents=[project], help="label new images with a class or `unknown`")
    pr.add_argument("images", nargs="+", help="image files or folders")
    pr.add_argument("--out", default=None, help="write the CSV here instead of printing it")
    return main


# commands that change the project (`predict` too: it trains the models when they are out of date)
WRITING = ("next", "push", "import", "export", "predict")


def run(args: argparse.Namespace) -> None:
    # imported here: `annotate.py --help` answers without loading torch
    from osal.annotate.create import create_project
    from osal.annotate.project import Project
    from osal.folders import check_writable, exclusive_use

    if args.command == "init":
        create_project(args.project, args.images, args.classes.split(","), args.labels, args.overrides)
        print(f"next: python src/annotate.py -p {args.project} next")
        return
    project = Project(args.project)
    if args.command not in WRITING:
        run_command(args, project)
        return
    check_writable(project.directory, "the annotation project", "make it writable, or copy the project folder to "
                   "a place you can write to and give that to -p")
    with exclusive_use(project.directory, f"annotate.py {args.command}"):
        run_command(args, project)


def run_command(args: argparse.Namespace, project: "Project") -> None:
    from osal.annotate import session
    from osal.annotate.export import check_predictions_file, export, format_predictions, predict
    from osal.annotate.project import shown
    from osal.atomic import atomic_write_text
    from osal.stored import DamagedFileError

    server = linked = None
    if args.command == "push" or getattr(args, "label_studio", False) or getattr(args, "from_label_studio", False):
        from osal.annotate import label_studio
        # before any training: a wrong URL, token or project id costs nothing
        server, linked = label_studio.connect(project, args.label_studio_url, args.label_studio_token,
                                              args.label_studio_project)
    if args.command in ("next", "push"):
        if args.command == "next":
            batch = session.next_batch(project)
        elif project.pending is None:
            raise OsalError("no batch is waiting for answers, so none to push; ask for one with `annotate.py next "
                            "--label-studio`")
        else:
            batch = project.pending
        sheet = f"{shown(project.batch_dir(batch['number']))}/answers.csv"
        if server is not None:
            try:
                linked = label_studio.push_batch(project, server, linked, batch)
            except DamagedFileError:
                raise  # its tasks.json, not the server: pushing again does not help until it is restored
            except OsalError as error:
                raise OsalError(f"batch {batch['number']} is written but not in Label Studio ({error}); push it again "
                                f"with: python src/annotate.py -p {args.project} push") from None
            print(f"batch {batch['number']}: {len(batch['indices'])} tasks in Label Studio project {linked} "
                  f"({server.url}/projects/{linked}); when they are answered: python src/annotate.py -p "
                  f"{args.project} import --from-label-studio")
        else:
            print(f"batch {batch['number']}: answer its images in contact_sheet.html or in the answer column of "
                  f"{sheet}, then: python src/annotate.py -p {args.project} import {sheet}")
    elif args.command == "import":
        if args.from_label_studio == (args.file is not None):
            raise OsalError("import takes either an answer FILE or --from-label-studio (one of the two)")
        if args.from_label_studio:
            if project.pending is None:
                raise OsalError("no batch is waiting for answers; ask for one with `annotate.py next --label-studio`")
            path = label_studio.pull_batch(project, server, linked, project.pending)
        else:
            path = args.file
        session.import_answers(project, path)
        print(session.format_status(project, session.status(project)))
    elif args.command == "status":
        numbers = session.status(project)
        print(json.dumps(numbers, indent=1) if args.json else session.format_status(project, numbers))
    elif args.command == "export":
        print(shown(export(project, args.to)))
    elif args.command == "predict":
        if args.out:
            check_predictions_file(project, args.out)  # before the work, not after it
        rows = predict(project, args.images)
        text = format_predictions(rows)
        if args.out:
            atomic_write_text(args.out, text)
            names = [row[1] for row in rows]
            counts = ", ".join(f"{n} {names.count(n)}" for n in project.class_names + ["unknown"])
            print(f"{len(rows)} images: {counts}; written to {args.out}")
        else:
            print(text, end="")


def interrupted_line(args: argparse.Namespace) -> str:
    """What a Ctrl-C left, by command: every change a command makes is written whole or not at all."""
    if args.command == "init":
        return f"interrupted: no project was created in {args.project}; run the same init command again"
    if args.command in ("status", "predict", "export"):
        return f"interrupted: the project in {args.project} is unchanged (models it trained are kept for next time)"
    return (f"interrupted: the project in {args.project} is as it was before this `{args.command}` or as it is after "
            f"it, never in between; `python src/annotate.py -p {args.project} status` shows which")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("osal").setLevel(logging.INFO)
    from osal.errors import machine_problem
    from osal.interrupt import EXIT_STATUS, Interrupted, ctrl_c_interrupts
    from osal.quiet import quiet_lightning
    quiet_lightning()
    try:
        with ctrl_c_interrupts():
            run(args)
    except Interrupted:
        print(interrupted_line(args), file=sys.stderr)
        return EXIT_STATUS
    except OSError as error:
        problem = machine_problem(error, where=f"writing under {args.project}")
        if problem is None:
            raise  # not the machine's doing: a bug, shown with its traceback
        # the state file is replaced whole or not at all, so the project is as the last complete command left it
        print(f"error: {problem}; the project is as the last completed command left it: fix that and run this "
              "command again", file=sys.stderr)
        return 2
    except OsalError as error:
        # a mistake the user can fix: the message, no traceback, non-zero exit
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
