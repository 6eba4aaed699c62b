"""IPython magics: ``%ask`` / ``%%ask``. Thin: every step is a call on the kernel's ``Session``."""

from __future__ import annotations

import json
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from dataask_jupyter.config import Ask
from dataask_jupyter.errors import DataaskError
from dataask_jupyter.render import display_answer
from dataask_jupyter.session import Session

_SUBCOMMANDS = (
    "load",
    "upload",
    "history",
    "reset",
    "code",
    "datasets",
    "sandbox",
    "export",
    "use",
    "help",
)


@magic_arguments()
@argument("path", help="file path, or the name of a DataFrame variable in the notebook")
@argument("--name", "-n", default=None, help="dataset name (default: from the file name)")
@argument("--sheet", "-s", default=None, help="workbook sheet name or 0-based index")
def _load_args(line: str) -> None:
    """%ask load PATH [--name N] [--sheet S]"""


@magic_arguments()
@argument("path", help="file to write: .csv, .json, .xlsx or .png")
@argument("--turn", "-t", type=int, default=None, help="turn number (default: the last)")
@argument(
    "--no-formula-guard",
    action="store_true",
    help="do not neutralise cells that start with = + - @",
)
def _export_args(line: str) -> None:
    """%ask export PATH [--turn K]"""


@magic_arguments()
@argument("--dataset", "-d", default=None, help="dataset to ask about (default: the active one)")
@argument("-o", "--output", default=None, help="store the answer's value in this variable")
@argument("question", nargs="*", help="the question (or the cell body with %%ask)")
def _ask_args(line: str) -> None:
    """%%ask [--dataset N] [-o VAR]"""


@magics_class
class AskMagics(Magics):
    """``%ask`` and ``%%ask``."""

    def __init__(self, shell: Any, settings: Ask) -> None:
        super().__init__(shell)
        self.settings = settings
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session(self.settings, notify=_notify)
        return self._session

    @line_cell_magic
    def ask(self, line: str, cell: str | None = None) -> Any:
        """Ask questions about your data. ``%ask help`` lists the commands."""
        try:
            return self._dispatch(line, cell)
        except DataaskError as exc:
            raise UsageError(str(exc)) from None

    def _dispatch(self, line: str, cell: str | None) -> Any:
        words = line.strip().split(None, 1)
        head = words[0] if words else ""
        rest = words[1] if len(words) > 1 else ""
        if cell is None and head in _SUBCOMMANDS:
            return getattr(self, f"_cmd_{head}")(rest)
        if cell is not None and head in _SUBCOMMANDS and not cell.strip():
            return getattr(self, f"_cmd_{head}")(rest)
        return self._question(line, cell)

    # --- questions ------------------------------------------------------------------------
    def _question(self, line: str, cell: str | None) -> None:
        try:
            args = (
                parse_argstring(_ask_args, line)
                if cell is not None or line.lstrip().startswith("-")
                else None
            )
        except UsageError:
            raise
        if cell is not None:
            question = cell.strip()
            dataset = args.dataset if args else None
            output = args.output if args else None
            if args and args.question:
                question = (" ".join(args.question) + "\n" + question).strip()
        elif args is not None:
            question, dataset, output = " ".join(args.question), args.dataset, args.output
        else:
            question, dataset, output = line.strip(), None, None
        if not question:
            raise UsageError(
                "write a question: %ask QUESTION, or %%ask with the question in the cell"
            )
        answer = self.session.ask(question, dataset=dataset)
        display_answer(answer, self.settings)
        if output:
            if not output.isidentifier():
                raise UsageError(f"-o needs a variable name, not {output!r}")
            self._ns()[output] = answer.value if answer.ok else None

    def _ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns

    # --- subcommands ----------------------------------------------------------------------
    def _cmd_help(self, rest: str) -> None:
        print(__doc_help__)

    def _cmd_load(self, rest: str) -> None:
        args = parse_argstring(_load_args, rest)
        sheet: str | int | None = args.sheet.strip("\"'") if args.sheet else None
        if isinstance(sheet, str) and sheet.isdigit():
            sheet = int(sheet)
        source: Any = args.path.strip("\"'")
        ns = self._ns()
        if source.isidentifier() and source in ns:
            import pandas as pd

            if not isinstance(ns[source], pd.DataFrame):
                raise UsageError(f"{source} is a {type(ns[source]).__name__}, not a DataFrame")
            name = args.name or source
            source = ns[source]
        else:
            name = args.name.strip("\"'") if args.name else None
        ds = self.session.load(source, name=name, sheet=sheet)
        print(f"Loaded {ds.summary()}")
        if ds.sheets and len(ds.sheets) > 1:
            print("Sheets: " + ", ".join(f'"{s}"' for s in ds.sheets) + " (pick with --sheet)")
        for note in ds.notes:
            print(f"Note: {note}")

    def _cmd_upload(self, rest: str) -> None:
        from dataask_jupyter.upload import upload_widget

        display(upload_widget(self.session))

    def _cmd_use(self, rest: str) -> None:
        ds = self.session.use(rest.strip())
        print(f"Active dataset: {ds.summary()}")

    def _cmd_datasets(self, rest: str) -> None:
        s = self.session
        if not s.datasets:
            print("No datasets loaded. Use %ask load PATH.")
        for name, ds in s.datasets.items():
            mark = "*" if name == s.active else " "
            print(f"{mark} {ds.summary()}")

    def _cmd_history(self, rest: str) -> None:
        h = self.session.history
        if not h:
            print("No questions asked yet.")
        for a in h:
            status = a.summary
            print(f"[{a.number}] ({a.dataset}) {a.question}\n     -> {status}")

    def _cmd_reset(self, rest: str) -> None:
        self.session.reset()
        print("Conversation cleared (datasets kept).")

    def _cmd_code(self, rest: str) -> None:
        turn = int(rest) if rest.strip().isdigit() else None
        print(self.session.turn(turn).code)

    def _cmd_sandbox(self, rest: str) -> None:
        info = self.session.sandbox_info()
        if not info["running"]:
            print(
                f"Sandbox not running yet (Ask.sandbox = {self.settings.sandbox!r}); it starts "
                "with the first load or question."
            )
            return
        for key in (
            "backend",
            "isolation",
            "id",
            "uptime_s",
            "restarts",
            "exec_timeout_s",
            "limits",
            "datasets",
        ):
            value = info.get(key)
            print(f"{key:>15}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")

    def _cmd_export(self, rest: str) -> None:
        args = parse_argstring(_export_args, rest)
        options = {"formula_guard": False} if args.no_formula_guard else {}
        path = self.session.export(args.path, turn=args.turn, **options)
        print(f"Wrote {path}")


def _notify(msg: str) -> None:
    print(msg, flush=True)


__doc_help__ = """\
%ask load PATH [--name N] [--sheet S]   load a CSV/XLS/XLSX/parquet file (or a DataFrame variable)
%ask upload                             upload files with a widget
%ask QUESTION                           ask about the active dataset
%%ask [--dataset N] [-o VAR]            ask with the question as the cell body
%ask datasets | use N                   list datasets | switch the active one
%ask history | code [K] | reset         conversation so far | code of turn K | forget it
%ask export PATH [--turn K]             save an answer as .csv, .json, .xlsx or .png
%ask sandbox                            where the code runs and with which isolation
Settings: %config Ask"""


def split_words(line: str) -> list[str]:
    return shlex.split(line)
