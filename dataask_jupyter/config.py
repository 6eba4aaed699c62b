"""Settings: one traitlets ``Ask`` configurable, defaults from the environment.

In a notebook ``%config Ask.<name> = value`` changes the live instance the magics use; in Python
``Session(llm_model="...", exec_timeout=30)`` overrides per session.
"""

from __future__ import annotations

import os

from traitlets import Bool, Enum, Float, Int, List, Unicode, Union, default
from traitlets.config import Configurable


def _env(*names: str) -> str:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return ""


class Ask(Configurable):
    """dataask settings (``%config Ask`` lists them)."""

    # --- LLM -------------------------------------------------------------------------------
    llm = Unicode(
        help="'' to use the configured endpoint (or the local model when none is set); "
        "'local' to force the embedded local model. Env: DATAASK_LLM."
    ).tag(config=True)
    llm_base_url = Unicode(
        help="OpenAI-compatible base URL. Env: DATAASK_LLM_BASE_URL, else OPENAI_BASE_URL."
    ).tag(config=True)
    llm_api_key = Unicode(
        help="API key for the endpoint. Env: DATAASK_LLM_API_KEY, else OPENAI_API_KEY."
    ).tag(config=True)
    llm_model = Unicode(help="Model name. Env: DATAASK_LLM_MODEL.").tag(config=True)
    llm_timeout = Float(60.0, help="Seconds to wait for one LLM reply.").tag(config=True)
    llm_max_retries = Int(
        3, help="Retries (with backoff) on LLM timeouts, 429 and 5xx before giving up."
    ).tag(config=True)
    temperature = Float(0.0, help="Sampling temperature for code generation.").tag(config=True)
    max_tokens = Int(1024, help="Most tokens the LLM may write per reply.").tag(config=True)
    max_repairs = Int(
        2, help="How many times a failing answer's error is sent back to the LLM to fix."
    ).tag(config=True)
    static_checks = Bool(
        True,
        help="Refuse obviously hostile or file-reading code before it reaches the sandbox "
        "(defence in depth; the sandbox is the boundary).",
    ).tag(config=True)
    result_checks = Union(
        [Bool(), List(Unicode())],
        default_value=True,
        help="Check each result against the question's wording (yes/no, which, top N, empty) "
        "and send a mismatch back to the LLM once; also adds an answer-type hint to the prompt. "
        "True (all checks), False (none) or a list of check names "
        "(dataask_jupyter.checks.CHECKS).",
    ).tag(config=True)
    candidates = Enum(
        ["auto", "single", "vote", "all"],
        default_value="auto",
        help="'vote': where the answer is a value that can be compared (a number, a label, "
        "yes/no, a short list), also answer in one line, and where the two differ a third "
        "way with the needed columns named first; the answer most ways agree on wins. "
        "'single': one answer. 'all': every way every time (for measuring). 'auto': vote "
        "on the embedded local model, single elsewhere. Env: DATAASK_CANDIDATES.",
    ).tag(config=True)
    repair_timeouts = Bool(
        False,
        help="Send a run that hit Ask.exec_timeout back to the LLM for repair (off: an endless "
        "loop is reported at once instead of costing max_repairs more timeouts).",
    ).tag(config=True)
    local_idle_timeout = Float(
        900.0, help="Seconds of no use after which the local model server stops."
    ).tag(config=True)

    # --- sandbox ---------------------------------------------------------------------------
    sandbox = Enum(
        ["auto", "docker", "local", "sidecar"],
        default_value="auto",
        help="Where generated code runs: 'docker' (a hardened container), 'local' (a separate "
        "process, bubblewrap-isolated where available), 'auto' (Docker if the engine answers). "
        "Env: DATAASK_SANDBOX.",
    ).tag(config=True)
    sandbox_image = Unicode(
        help="Docker image of the sandbox server. Env: DATAASK_SANDBOX_IMAGE."
    ).tag(config=True)
    sandbox_socket_dir = Unicode(
        help="Directory shared with a sandbox sidecar (Ask.sandbox = 'sidecar'; JupyterHub, "
        "docs/deploy.md). Env: DATAASK_SANDBOX_SOCKET_DIR; default /run/dataask."
    ).tag(config=True)
    exec_timeout = Float(
        60.0, help="Seconds one run of generated code may take before it is stopped."
    ).tag(config=True)
    transport_timeout = Float(
        30.0, help="Seconds to wait for the sandbox to answer a non-execution request."
    ).tag(config=True)
    start_timeout = Float(60.0, help="Seconds to wait for the sandbox to start.").tag(config=True)
    sandbox_memory_mb = Int(2048, help="Memory limit of the sandbox (MiB).").tag(config=True)
    sandbox_cpus = Float(1.0, help="CPU limit of the sandbox (cores).").tag(config=True)
    sandbox_pids = Int(64, help="Most processes/threads in the sandbox.").tag(config=True)
    sandbox_tmpfs_mb = Int(64, help="Size of the sandbox's writable /tmp (MiB).").tag(config=True)
    max_result_bytes = Int(
        256 * 1024 * 1024, help="Largest result the sandbox may send back (bytes)."
    ).tag(config=True)

    # --- data ------------------------------------------------------------------------------
    max_file_bytes = Int(1 << 30, help="Largest file `load` accepts (bytes).").tag(config=True)
    max_uncompressed_bytes = Int(
        2 << 30, help="Largest uncompressed content of a workbook (zip-bomb guard, bytes)."
    ).tag(config=True)

    # --- conversation ----------------------------------------------------------------------
    history_turns = Int(
        6, help="How many recent turns the prompt carries for follow-up questions."
    ).tag(config=True)
    max_history = Int(200, help="Most turns kept in Session.history.").tag(config=True)
    persist = Bool(
        True,
        help="Keep each notebook's conversation and datasets across kernel restarts (SQLite "
        "under the Jupyter data directory; env DATAASK_STATE_DIR moves it). Used by the magics "
        "and the side panel; Session() in Python keeps nothing unless given a store.",
    ).tag(config=True)
    profile_max_columns = Int(
        80, help="Columns described in full in the prompt; the rest by name only."
    ).tag(config=True)
    profile_max_chars = Int(6000, help="Hard cap on one dataset's prompt summary.").tag(config=True)
    send_samples = Bool(
        True,
        help="Send sample values of each column to the LLM with the schema (off: names, types "
        "and counts only; no cell value of your data leaves the machine in the prompt).",
    ).tag(config=True)
    formula_guard = Bool(
        True,
        help="Neutralise spreadsheet formulas in CSV/XLSX exports "
        "(cells starting with = + - @, tab or CR).",
    ).tag(config=True)
    max_upload_bytes = Int(256 << 20, help="Largest file %ask upload accepts (bytes).").tag(
        config=True
    )

    @default("llm")
    def _llm_default(self) -> str:
        return _env("DATAASK_LLM")

    @default("llm_base_url")
    def _base_url_default(self) -> str:
        return _env("DATAASK_LLM_BASE_URL", "OPENAI_BASE_URL")

    @default("llm_api_key")
    def _api_key_default(self) -> str:
        return _env("DATAASK_LLM_API_KEY", "OPENAI_API_KEY")

    @default("llm_model")
    def _model_default(self) -> str:
        return _env("DATAASK_LLM_MODEL")

    @default("sandbox")
    def _sandbox_default(self) -> str:
        v = _env("DATAASK_SANDBOX").lower()
        return v if v in ("auto", "docker", "local", "sidecar") else "auto"

    @default("candidates")
    def _candidates_default(self) -> str:
        v = _env("DATAASK_CANDIDATES").lower()
        return v if v in ("auto", "single", "vote", "all") else "auto"

    @default("sandbox_socket_dir")
    def _socket_dir_default(self) -> str:
        return _env("DATAASK_SANDBOX_SOCKET_DIR") or "/run/dataask"

    @default("sandbox_image")
    def _image_default(self) -> str:
        return _env("DATAASK_SANDBOX_IMAGE") or "dataask-sandbox:latest"
