"""Code extraction from an LLM reply, plus static checks on the AST (defence in depth only).

The sandbox is the security boundary. These checks catch mistakes early (reading files that are
already loaded, a missing ``result``) and refuse obviously hostile code before it travels. They
look at the syntax tree of the code only, never at words in the question or column names, and
refuse file and process access, not names that look like it: ``df.to_csv("x.csv")`` writes a
file and is refused, ``fig.to_json()`` returns text and passes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from dataask_jupyter.errors import CodeExtractionError

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGS = {"", "python", "py", "python3", "pandas"}

_BANNED_MODULES = {
    "os",
    "sys",
    "subprocess",
    "socket",
    "ctypes",
    "cffi",
    "shutil",
    "importlib",
    "builtins",
    "pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "multiprocessing",
    "threading",
    "signal",
    "resource",
    "pty",
    "fcntl",
    "mmap",
    "urllib",
    "http",
    "requests",
    "httpx",
    "ftplib",
    "smtplib",
    "telnetlib",
    "asyncio",
    "selectors",
    "pathlib",
    "io",
    "tempfile",
    "glob",
    "code",
    "codeop",
    "inspect",
    "gc",
    "posix",
    "nt",
    "_posixsubprocess",
    "webbrowser",
}
_BANNED_CALLS = {
    "eval",
    "exec",
    "compile",
    "open",
    "__import__",
    "input",
    "breakpoint",
    "globals",
    "locals",
    "vars",
    "memoryview",
}
# File and process access by name. Which call is which is decided on the syntax tree, so that
# harmless look-alikes pass: ``fig.to_json()`` and ``df.to_csv()`` return text, while
# ``df.to_csv("x.csv")`` writes a file.
_READERS = re.compile(
    r"^read_(csv|table|fwf|excel|json|html|xml|parquet|orc|feather|pickle|hdf|sql\w*|stata|sas|"
    r"spss|clipboard|gbq)$"
)
#: write to the path or buffer given as the first argument; return the text without one
_WRITE_IF_PATH = {
    "to_csv",
    "to_json",
    "to_html",
    "to_xml",
    "to_latex",
    "to_markdown",
    "to_string",
    "to_parquet",
    "to_orc",
}
_PATH_KEYWORDS = {"path_or_buf", "path_or_buffer", "path", "buf", "excel_writer", "file", "fname"}
#: always a file, a database, the clipboard or a browser process, whatever the arguments
_ALWAYS_IO = {
    "to_excel": "writes a file",
    "to_feather": "writes a file",
    "to_hdf": "writes a file",
    "to_pickle": "writes a file",
    "to_stata": "writes a file",
    "to_sql": "writes to a database",
    "to_gbq": "writes to a database",
    "to_clipboard": "uses the clipboard (another process)",
    "write_image": "writes a file",
    "write_html": "writes a file",
    "write_json": "writes a file",
    "to_image": "starts a browser process",
    "savefig": "writes a file",
    "tofile": "writes a file",
    "ExcelWriter": "writes a file",
    "ExcelFile": "reads a file",
    "HDFStore": "opens a file",
}
#: numpy's file functions (``np.save``...), refused when called on numpy itself
_NUMPY_IO = {
    "save",
    "savez",
    "savez_compressed",
    "savetxt",
    "load",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "fromregex",
    "memmap",
}
_SAFE_DUNDERS = {"__name__", "__doc__", "__len__", "__class__"}


@dataclass(frozen=True)
class Extracted:
    """Code ready to run, and what was done to it."""

    code: str
    notes: tuple[str, ...] = ()


def _blocks(reply: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(reply) if lang.lower() in _CODE_LANGS]


def _assigns_result(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and n.id == "result":
                    return True
    return False


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _strip_prose(reply: str) -> str:
    """From a reply without fences, keep the longest run of lines that parses as Python."""
    lines = reply.strip().splitlines()
    best = ""
    for start in range(len(lines)):
        for end in range(len(lines), start, -1):
            chunk = "\n".join(lines[start:end])
            if len(chunk) <= len(best):
                break
            tree = _parses(chunk)
            if (
                tree is not None
                and tree.body
                and not (
                    len(tree.body) == 1
                    and isinstance(tree.body[0], ast.Expr)
                    and isinstance(tree.body[0].value, ast.Name)
                    and end - start == 1
                )
            ):
                best = chunk
                break
    return best


def extract_code(reply: str) -> Extracted:
    """Pick the code out of ``reply`` (fenced or bare, prose around it, several blocks)."""
    notes: list[str] = []
    blocks = [b.strip("\n") for b in _blocks(reply) if b.strip()]
    if blocks:
        with_result = [b for b in blocks if (t := _parses(b)) is not None and _assigns_result(t)]
        if with_result:
            code = with_result[-1]
            earlier = blocks[: blocks.index(code)]
            helpers = [
                b
                for b in earlier
                if (t := _parses(b)) is not None
                and all(
                    isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign))
                    for s in t.body
                )
            ]
            if helpers and len(blocks) > 1:
                code = "\n\n".join([*helpers, code])
                notes.append("joined several code blocks")
        else:
            code = "\n\n".join(blocks)
            if len(blocks) > 1:
                notes.append("joined several code blocks")
    else:
        code = _strip_prose(reply)
    if not code.strip():
        raise CodeExtractionError("the reply held no Python code")
    code = code.strip("\n")
    tree = _parses(code)
    if tree is None:
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise CodeExtractionError(
                f"SyntaxError: {exc.msg} (line {exc.lineno}) in the generated code"
            ) from None
    assert tree is not None
    if not _assigns_result(tree):
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr) and not _is_print(last.value):
            lines = code.splitlines()
            start, end = last.lineno - 1, (last.end_lineno or last.lineno)
            expr = "\n".join(lines[start:end])
            code = "\n".join([*lines[:start], f"result = {expr.strip()}", *lines[end:]])
            notes.append("assigned the last expression to `result`")
        else:
            raise CodeExtractionError("the code does not assign the answer to `result`")
    shown = _SHOW_RESULT.sub(r"\1result = \2", code)
    if shown != code:  # `result = fig.show()` is None: the figure was meant
        code = shown
        notes.append("kept the figure instead of the value of .show()")
    return Extracted(code=code, notes=tuple(notes))


_SHOW_RESULT = re.compile(r"^([ \t]*)result\s*=\s*(\w[\w.]*)\.show\(\)[ \t]*$", re.M)


def _is_print(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("print", "display")
    )


_FORBIDDEN_ATTRS = {"system", "popen", "spawn", "f_globals", "f_back", "gi_frame"}


def _forbidden_attribute(attr: str) -> bool:
    return (attr.startswith("__") and attr not in _SAFE_DUNDERS) or attr in _FORBIDDEN_ATTRS


def _module_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> module for the code's imports, plus the names the sandbox provides."""
    aliases = {"np": "numpy", "pd": "pandas", "px": "plotly.express", "go": "plotly.graph_objects"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _receiver(f: ast.Attribute, aliases: dict[str, str]) -> str:
    """The dotted module a method is called on (``np.save`` -> "numpy"), or "" for a value."""
    parts: list[str] = []
    node: ast.expr = f.value
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return ""
    return ".".join([aliases[node.id], *reversed(parts)])


def _gives_path(call: ast.Call) -> bool:
    """Whether a ``to_csv``-like call is given somewhere to write (a non-None first argument
    or path keyword); without one it returns the text."""

    def given(v: ast.expr) -> bool:
        return not (isinstance(v, ast.Constant) and v.value is None)

    if call.args and given(call.args[0]):
        return True
    return any(k.arg in _PATH_KEYWORDS and given(k.value) for k in call.keywords)


def _io_problem(call: ast.Call, aliases: dict[str, str]) -> str | None:
    """Why ``call`` reaches files or processes, or None for an ordinary call."""
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    module = _receiver(f, aliases) if isinstance(f, ast.Attribute) else ""
    if isinstance(f, ast.Name) and f.id in aliases and "." in aliases[f.id]:
        module, name = aliases[f.id].rsplit(".", 1)  # from numpy import save
    if _READERS.match(name):
        return f"{name}() reads a file"
    if name in _ALWAYS_IO:
        return f"{name}() {_ALWAYS_IO[name]}"
    if module.split(".")[0] == "numpy" and name in _NUMPY_IO:
        return f"np.{name}() reads or writes a file"
    if name in _WRITE_IF_PATH and module != "plotly.io" and _gives_path(call):
        return f"{name}() with a path writes a file (without one it returns the text)"
    return None


def check_code(code: str) -> list[str]:
    """Problems that stop the code before it runs (each a short sentence for the LLM to fix)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"SyntaxError: {exc.msg} (line {exc.lineno})"]
    aliases = _module_aliases(tree)
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for name in names:
                if name.split(".")[0] in _BANNED_MODULES:
                    problems.append(
                        f"line {node.lineno}: importing {name!r} is not allowed; "
                        "use only pandas, numpy and plotly"
                    )
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in _BANNED_CALLS:
                problems.append(f"line {node.lineno}: calling {f.id}() is not allowed")
            elif isinstance(f, ast.Name) and f.id in ("getattr", "setattr", "delattr"):
                if len(node.args) > 1 and not (
                    isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)
                    and not node.args[1].value.startswith("_")
                ):
                    problems.append(
                        f"line {node.lineno}: {f.id}() with a computed or private "
                        "attribute name is not allowed"
                    )
            elif (why := _io_problem(node, aliases)) is not None:
                problems.append(
                    f"line {node.lineno}: {why}; the data is already loaded as `df` (and "
                    "`dfs`), and the answer goes in `result` (tables, numbers, figures as objects)"
                )
        elif isinstance(node, ast.Attribute) and _forbidden_attribute(node.attr):
            problems.append(f"line {node.lineno}: access to {node.attr!r} is not allowed")
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__"):
            problems.append(f"line {node.lineno}: access to {node.id!r} is not allowed")
    return list(dict.fromkeys(problems))
