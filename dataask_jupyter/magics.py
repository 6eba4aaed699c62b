"""IPython magics: ``%ask`` / ``%%ask``. Thin: every step is a call on the kernel's ``Session``.

``%ask WORD ARGS`` runs a subcommand only when ARGS parse completely as that subcommand's
arguments; any other line is a question (``%ask reset the index of df`` asks). ``%%ask`` bodies
are always questions. Loading this module imports neither pandas nor the session: they are
imported on first use, so ``%load_ext dataask`` stays cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from dataask_jupyter.errors import CancelledError, DataaskError
from dataask_jupyter.progress import ProgressView

if TYPE_CHECKING:
    from dataask_jupyter.config import Ask
    from dataask_jupyter.session import Answer, Session
    from dataask_jupyter.store import ConversationStore


# --- the subcommands' arguments (one parser each) ---------------------------------------------
@magic_arguments()
@argument("path", help="file path, or the name of a DataFrame variable in the notebook")
@argument("--name", "-n", default=None, help="dataset name (default: from the file name)")
@argument("--sheet", "-s", default=None, help="workbook sheet name or 0-based index")
@argument("--header-row", type=int, default=None, help="1-based row that holds the header")
@argument("--range", default=None, help="cell range that holds the table, e.g. A5:E9")
def _load_args(line: str) -> None:
    """%ask load PATH [--name N] [--sheet S] [--header-row N] [--range A5:E9]"""


@magic_arguments()
@argument("path", help="file to write: .csv .json .xlsx .png, or .ipynb .py for the conversation")
@argument("--turn", "-t", type=int, default=None, help="turn number (default: the last)")
@argument(
    "--no-formula-guard",
    action="store_true",
    help="do not neutralise cells that start with = + - @",
)
def _export_args(line: str) -> None:
    """%ask export PATH [--turn K] [--no-formula-guard]"""


@magic_arguments()
@argument("turn", type=int, nargs="?", default=None, help="turn number (default: the last)")
def _code_args(line: str) -> None:
    """%ask code [K]"""


@magic_arguments()
@argument("name", help="dataset name")
def _use_args(line: str) -> None:
    """%ask use NAME"""


@magic_arguments()
def _no_args(line: str) -> None:
    """A subcommand without arguments."""


@magic_arguments()
@argument("--dataset", "-d", default=None, help="dataset to ask about (default: the active one)")
@argument("-o", "--output", default=None, help="store the answer's value in this variable")
def _ask_args(line: str) -> None:
    """%%ask [--dataset N] [-o VAR]"""


#: Leading ``-x VALUE`` / ``--opt VALUE`` / ``--opt=VALUE`` pairs before a question.
_OPTIONS = re.compile(r"\s*((?:--?[A-Za-z][\w-]*(?:=\S+|\s+\S+)\s*)*)(.*)", re.S)


def split_options(line: str) -> tuple[str, str]:
    """``"-d sales -o n how many?"`` -> ``("-d sales -o n", "how many?")``; the question stays
    as written (quotes, apostrophes and all)."""
    m = _OPTIONS.fullmatch(line)
    assert m is not None  # the pattern matches any string
    return m.group(1).strip(), m.group(2).strip()


# --- one-line questions that end with "?" ----------------------------------------------------
_ASK_LINE = re.compile(r"^([ \t]*)%ask[ \t]+(.*?)(\r?\n)?$", re.S)


def ask_line_transform(lines: list[str]) -> list[str]:
    """Input transformer (runs before IPython's help syntax): ``%ask TEXT`` lines become
    ``get_ipython().run_line_magic('ask', 'TEXT')``, so a question ending with "?" reaches
    ``%ask`` instead of being read as ``TEXT?`` (object help). Only lines that start with
    ``%ask `` change; cell magics (``%%...`` cells) and continued lines are left alone."""
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        m = _ASK_LINE.match(line)
        if m and not m.group(2).rstrip().endswith("\\"):
            indent, text, newline = m.group(1), m.group(2), m.group(3) or ""
            line = f"{indent}get_ipython().run_line_magic('ask', {text!r}){newline}"
        out.append(line)
    return out


# --- the magics -------------------------------------------------------------------------------
@magics_class
class AskMagics(Magics):
    """``%ask`` and ``%%ask``."""

    def __init__(self, shell: Any, settings: Ask) -> None:
        super().__init__(shell)
        self.settings = settings
        self._session: Session | None = None
        self._commands: dict[str, tuple[Callable[..., Any], Callable[[Any], None]]] = {
            "load": (_load_args, self._cmd_load),
            "upload": (_no_args, self._cmd_upload),
            "history": (_no_args, self._cmd_history),
            "reset": (_no_args, self._cmd_reset),
            "forget": (_no_args, self._cmd_forget),
            "code": (_code_args, self._cmd_code),
            "datasets": (_no_args, self._cmd_datasets),
            "use": (_use_args, self._cmd_use),
            "sandbox": (_no_args, self._cmd_sandbox),
            "export": (_export_args, self._cmd_export),
            "help": (_no_args, self._cmd_help),
        }

    @property
    def session(self) -> Session:
        if self._session is None:
            from dataask_jupyter.session import Session

            self._session = Session(self.settings, notify=_notify, store=self._store())
        return self._session

    def _store(self) -> ConversationStore | None:
        """Where this notebook's conversation is kept (``Ask.persist``), or None."""
        if not self.settings.persist:
            return None
        from dataask_jupyter.notebook_key import notebook_key
        from dataask_jupyter.store import ConversationStore

        try:
            user_ns = self.shell.user_ns if self.shell is not None else None
            return ConversationStore(None, notebook_key(user_ns), notify=_notify)
        except DataaskError as exc:
            _notify(f"dataask: this conversation will not be kept after a restart ({exc})")
            return None

    @line_cell_magic
    def ask(self, line: str, cell: str | None = None) -> Any:
        """Ask questions about your data. ``%ask help`` lists the commands."""
        try:
            if cell is None:
                return self._line(line)
            options, text = split_options(line)
            return self._question(options, (text + "\n" + cell).strip())
        except CancelledError:
            print("cancelled")
            return None
        except DataaskError as exc:
            raise UsageError(str(exc)) from None

    def _line(self, line: str) -> None:
        head, rest = [*line.strip().split(None, 1), "", ""][:2]
        if head == "prompt":
            return self._cmd_prompt(rest)
        if head in self._commands:
            parser, command = self._commands[head]
            try:
                args = parse_argstring(parser, rest)
            except (UsageError, ValueError) as exc:
                # `reset the index of df` is a question; `load` alone or `load x --shet y` is not
                if not rest or any(w.startswith("--") for w in rest.split()):
                    raise UsageError(f"%ask {head}: {exc}\n{_usage(parser, head)}") from None
            else:
                return command(args)
        options, question = split_options(line)
        return self._question(options, question)

    # --- questions ------------------------------------------------------------------------
    def _question(self, options: str, question: str) -> None:
        from dataask_jupyter.render import display_answer

        try:
            args = parse_argstring(_ask_args, options)
        except ValueError as exc:  # an unclosed quote
            raise UsageError(f"%ask options {options!r}: {exc}") from None
        if not question:
            raise UsageError(
                "write a question: %ask QUESTION, or %%ask with the question in the cell"
            )
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o needs a variable name, not {args.output!r}")
        view = ProgressView()
        try:
            answer = self.session.ask(question, dataset=args.dataset, on_event=view)
        finally:
            view.close()
        if args.output:
            self._ns()[args.output] = answer.value if answer.ok else None
        if answer.cancelled:
            print("cancelled")
            return
        display_answer(answer, self.settings)

    def _ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns

    # --- subcommands ----------------------------------------------------------------------
    def _cmd_help(self, args: Any) -> None:
        print(HELP)

    def _cmd_load(self, args: Any) -> None:
        sheet: str | int | None = _unquote(args.sheet)
        if isinstance(sheet, str) and sheet.isdigit():
            sheet = int(sheet)
        source: Any = _unquote(args.path)
        name = _unquote(args.name)
        ns = self._ns()
        if source.isidentifier() and source in ns:
            import pandas as pd

            if not isinstance(ns[source], pd.DataFrame):
                raise UsageError(f"{source} is a {type(ns[source]).__name__}, not a DataFrame")
            name = name or source
            source = ns[source]
        ds = self.session.load(
            source, name=name, sheet=sheet, header_row=args.header_row, range=_unquote(args.range)
        )
        print(f"Loaded {ds.summary()}")
        if ds.sheets and len(ds.sheets) > 1:
            print("Sheets: " + ", ".join(f'"{s}"' for s in ds.sheets) + " (pick with --sheet)")
        for note in ds.notes:
            print(f"Note: {note}")

    def _cmd_upload(self, args: Any) -> None:
        from IPython.display import display

        from dataask_jupyter.upload import upload_widget

        display(upload_widget(self.session))

    def _cmd_use(self, args: Any) -> None:
        ds = self.session.use(_unquote(args.name) or "")
        print(f"Active dataset: {ds.summary()}")

    def _cmd_datasets(self, args: Any) -> None:
        s = self.session
        if not s.datasets and not s.pending:
            print("No datasets loaded. Use %ask load PATH.")
        for name, ds in s.datasets.items():
            mark = "*" if name == s.active else " "
            print(f"{mark} {ds.summary()}")
        for name, rec in s.pending.items():
            mark = "*" if name == s.active else " "
            print(f"{mark} {name}: from {rec.source} (read again at the next question)")

    def _cmd_history(self, args: Any) -> None:
        history: list[Answer] = self.session.history
        if not history:
            print("No questions asked yet.")
        for a in history:
            print(f"[{a.number}] ({a.dataset}) {a.question}\n     -> {a.summary}")

    def _cmd_reset(self, args: Any) -> None:
        self.session.reset()
        print("Conversation cleared (datasets kept).")

    def _cmd_forget(self, args: Any) -> None:
        self.session.forget()
        print("Deleted what dataask stored for this notebook.")

    def _cmd_code(self, args: Any) -> None:
        print(self.session.turn(args.turn).code)

    def _cmd_sandbox(self, args: Any) -> None:
        info = self.session.sandbox_info()
        if not info.get("running"):
            print(
                f"Sandbox not running yet (Ask.sandbox = {self.settings.sandbox!r}); it starts "
                "with the first load or question."
            )
            return
        for key in (
            "backend",
            "isolation",
            "layers",
            "id",
            "uptime_s",
            "restarts",
            "exec_timeout_s",
            "limits",
            "datasets",
        ):
            if key in info:
                print(_field(key, info[key]))

    def _cmd_export(self, args: Any) -> None:
        options = {"formula_guard": False} if args.no_formula_guard else {}
        path = self.session.export(_unquote(args.path) or "", turn=args.turn, **options)
        print(f"Wrote {path}")

    def _cmd_prompt(self, question: str) -> None:
        s = self.session
        messages = s.prompt_preview(question) if question else s.prompt_preview()
        for m in messages:
            print(f"--- {m.get('role', '?')} ---\n{m.get('content', '')}")


def _unquote(value: str | None) -> str | None:
    return value.strip("\"'") if value is not None else None


def _field(key: str, value: Any) -> str:
    """One ``%ask sandbox`` entry; a list (such as the isolation layers) one item a line."""
    if isinstance(value, list) and value:
        items = (v if isinstance(v, str) else json.dumps(v) for v in value)
        return f"{key:>15}:\n" + "\n".join(f"{'':>17}- {v}" for v in items)
    shown = json.dumps(value) if isinstance(value, dict | list) else value
    return f"{key:>15}: {shown}"


def _usage(parser: Callable[..., Any], command: str) -> str:
    """``usage: %ask load [--name NAME] ... path``, from the subcommand's parser."""
    argparser = parser.parser  # type: ignore[attr-defined]
    words = argparser.format_usage().replace("%" + argparser.prog, f"%ask {command}").split()
    return "usage: " + " ".join(w for w in words if w != "::")


def _notify(msg: str) -> None:
    print(msg, flush=True)


HELP = """\
%ask load PATH [--name N] [--sheet S]   load a CSV, Excel or parquet file (or a DataFrame variable)
     [--header-row N] [--range A5:E9]   ... with the header row or the table's cells given
%ask upload                             upload files with a widget
%ask QUESTION                           ask about the active dataset
%%ask [--dataset N] [-o VAR]            ask with the question as the cell body
%ask datasets | use N                   list datasets | switch the active one
%ask history | code [K]                 conversation so far | code of turn K
%ask reset | forget                     start a new conversation | delete what is stored for it
%ask export PATH [--turn K]             an answer as .csv .json .xlsx .png; the conversation
                                        as .ipynb or .py (plain pandas code)
%ask prompt [QUESTION]                  what the next question would send to the LLM
%ask sandbox                            where the code runs and with which isolation layers
A line that is not one of these commands is a question. Settings: %config Ask"""
