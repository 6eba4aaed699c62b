"""Results built to attack the kernel: values whose deserialisation would run code, hostile frames
from a compromised server, and HTML/JS meant for the notebook.

The pickles here run ``PAYLOAD`` when loaded: it sets ``builtins.DATAASK_PWNED`` and creates a host
file. Only the kernel (this process) could do either, so both staying absent shows the kernel never
unpickled or otherwise evaluated what the sandbox sent.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.security.conftest import Box, known_hole


@pytest.fixture
def evil(box: Box) -> Iterator[str]:
    """Sandbox-side code defining ``Evil`` (pickles to PAYLOAD) and ``evil_pickle``."""
    target = str(box.host.target("unpickled"))
    payload = (
        "import builtins; builtins.DATAASK_PWNED = True; "
        f"open({target!r}, 'w').write('unpickled in the kernel')"
    )
    yield f"""
import pickle
PAYLOAD = {payload!r}
class Evil:
    def __reduce__(self):
        return (exec, (PAYLOAD,))
    def __repr__(self):
        return 'Evil()'
evil_pickle = pickle.dumps(Evil())
"""
    assert not hasattr(builtins, "DATAASK_PWNED"), "the kernel ran a pickle from the sandbox"


@pytest.mark.parametrize(
    "shape",
    [
        "result = Evil()",
        "result = [Evil(), {'k': Evil()}, (Evil(),), {Evil()}]",
        "result = evil_pickle",
        "result = pd.DataFrame({'obj': [Evil(), Evil()], 'raw': [evil_pickle, b'x']})",
        "result = pd.DataFrame({'a': [1, 2]}, index=pd.Index([Evil(), Evil()], name='evil'))",
        "result = pd.Series([Evil()], name='evil')",
        "result = df.copy()\nresult.attrs['evil'] = Evil()\nresult.attrs['raw'] = evil_pickle",
    ],
    ids=[
        "object",
        "containers",
        "pickle_bytes",
        "object_column",
        "object_index",
        "series",
        "attrs",
    ],
)
def test_values_that_would_unpickle(box: Box, evil: str, shape: str) -> None:
    a = box.attack(evil + shape, "return an evil object")
    assert a.error is None or a.error.startswith("ResultError"), a.error
    assert not hasattr(builtins, "DATAASK_PWNED")
    if isinstance(a.value, pd.DataFrame):
        assert all(not isinstance(v, bytes) or b"exec" not in v for v in a.value.to_numpy().ravel())
    box.healthy()


def test_pyarrow_extension_type_result(request: pytest.FixtureRequest, box: Box, evil: str) -> None:
    """A result column of an extension type whose (de)serialisation is a pickle."""
    known_hole(request, box.backend, "kernel-decode-crash")
    code = (
        evil
        + """
import pyarrow as pa
class EvilType(pa.ExtensionType):
    def __init__(self):
        super().__init__(pa.int64(), 'dataask.evil')
    def __arrow_ext_serialize__(self):
        return evil_pickle
    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return pickle.loads(serialized)
class FakePeriod(pa.ExtensionType):  # borrows a name the kernel has registered (pandas)
    def __init__(self):
        super().__init__(pa.int64(), 'pandas.period')
    def __arrow_ext_serialize__(self):
        return evil_pickle
    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls()
pa.register_extension_type(EvilType())
ext = pa.ExtensionArray.from_storage(EvilType(), pa.array([1, 2]))
fake = pa.ExtensionArray.from_storage(FakePeriod(), pa.array([1, 2]))
result = pd.DataFrame({'evil': pd.arrays.ArrowExtensionArray(ext),
                       'fake_period': pd.arrays.ArrowExtensionArray(fake)})
"""
    )
    box.attack(code, "return an extension type")  # no exception escaped Session.ask
    assert not hasattr(builtins, "DATAASK_PWNED")
    box.healthy()


# --- a compromised server: the generated code writes frames on the kernel socket itself -------

WIRE = """
import sys, io, json, struct
import pyarrow as pa
from dataask_sandbox import protocol
_f = sys._getframe()
while 'sock' not in _f.f_locals:
    _f = _f.f_back
sock = _f.f_locals['sock']
def ipc(table):
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()
def ext_table(name, meta, schema_meta=None):
    field = pa.field('a', pa.int64(), metadata={b'ARROW:extension:name': name,
                                                b'ARROW:extension:metadata': meta})
    schema = pa.schema([field], metadata=schema_meta)
    return ipc(pa.Table.from_arrays([pa.array([1, 2])], schema=schema))
"""

HOSTILE_FRAMES = {
    "py_extension_type_pickle": (
        "protocol.send(sock, {'type': 'result', 'kind': 'table'}, "
        "ext_table(b'arrow.py_extension_type', evil_pickle))"
    ),
    "pandas_period_pickle": (
        "protocol.send(sock, {'type': 'result', 'kind': 'table'}, "
        "ext_table(b'pandas.period', evil_pickle))"
    ),
    "pandas_interval_garbage": (
        "protocol.send(sock, {'type': 'result', 'kind': 'table'}, "
        'ext_table(b\'pandas.interval\', b\'{"subtype": "object", "closed": 7}\'))'
    ),
    "pandas_metadata": (
        "meta = {'index_columns': [], 'column_indexes': [], 'columns': [{'name': 'a', "
        "'field_name': 'a', 'pandas_type': 'object', 'numpy_type': 'pickle', "
        "'metadata': {'__reduce__': evil_pickle.hex()}}], 'attributes': {'x': evil_pickle.hex()}, "
        "'attrs': {'evil': evil_pickle.hex()}, 'pandas_version': '99'}\n"
        "t = pa.Table.from_arrays([pa.array([1, 2])], names=['a'])\n"
        "t = t.replace_schema_metadata({b'pandas': json.dumps(meta).encode()})\n"
        "protocol.send(sock, {'type': 'result', 'kind': 'table'}, ipc(t))"
    ),
    "pickle_as_table": "protocol.send(sock, {'type': 'result', 'kind': 'table'}, evil_pickle)",
    "pickle_as_series": (
        "protocol.send(sock, {'type': 'result', 'kind': 'series', 'name': 'x'}, evil_pickle)"
    ),
    "unknown_kind_pickle": "protocol.send(sock, {'type': 'result', 'kind': 'pickle'}, evil_pickle)",
    "image_not_png": "protocol.send(sock, {'type': 'result', 'kind': 'image'}, evil_pickle)",
    "figure_with_script": (
        "spec = {'data': [{'type': 'scatter', 'x': [1], 'y': [1], "
        "'name': '<script>alert(1)</script>'}], "
        "'layout': {'title': {'text': '<img src=x onerror=alert(1)>'}, "
        "'template': {'__reduce__': evil_pickle.hex()}}}\n"
        "protocol.send(sock, {'type': 'result', 'kind': 'figure'}, json.dumps(spec).encode())"
    ),
    "json_tags": (
        "v = {'$repr': evil_pickle.hex(), 'd': {'$datetime': 'not a date'}, "
        "'x': {'$pickle': evil_pickle.hex()}}\n"
        "protocol.send(sock, {'type': 'result', 'kind': 'json', 'pytype': 'tuple'}, "
        "json.dumps(v).encode())"
    ),
    "oversize_announced": (
        "sock.sendall(struct.pack('>IQ', 2, 1 << 40) + b'{}')  # a payload that never comes"
    ),
}


@pytest.mark.parametrize("frame", list(HOSTILE_FRAMES))
def test_hostile_frames_from_a_compromised_server(
    request: pytest.FixtureRequest, box: Box, evil: str, frame: str
) -> None:
    """The kernel decodes whatever arrives without running it and without crashing."""
    if frame == "pandas_metadata":
        known_hole(request, box.backend, "kernel-decode-crash")
    code = evil + WIRE + HOSTILE_FRAMES[frame] + "\nresult = 'server result'"
    a = box.attack(code, f"hostile frame {frame}")  # no exception escaped Session.ask
    assert not hasattr(builtins, "DATAASK_PWNED")
    if frame == "figure_with_script":
        _assert_inert_html(a._repr_mimebundle_()["text/html"])
    box.healthy()


@pytest.mark.parametrize("where", ["result_payload", "header"])
def test_deeply_nested_json_frames(request: pytest.FixtureRequest, box: Box, where: str) -> None:
    known_hole(request, box.backend, "kernel-decode-crash")
    deep = "'[' * 100_000 + ']' * 100_000"
    send = {
        "result_payload": (
            f"protocol.send(sock, {{'type': 'result', 'kind': 'json'}}, ({deep}).encode())"
        ),
        "header": (
            f'head = (\'{{"type": "stdout", "x": \' + {deep} + \'}}\').encode()\n'
            "sock.sendall(struct.pack('>IQ', len(head), 0) + head)"
        ),
    }[where]
    a = box.attack(WIRE + send + "\nresult = 1", f"deep json in the {where}")
    assert a.error is not None
    box.healthy()


def test_stdout_flood_past_the_server(request: pytest.FixtureRequest, box: Box) -> None:
    """64 MB of 'stdout' frames written straight to the socket: the kernel must cap them."""
    known_hole(request, box.backend, "kernel-stdout-unbounded")
    code = (
        WIRE
        + "chunk = 'w' * (1 << 20)\n"
        + "for _ in range(64):\n"
        + "    protocol.send(sock, {'type': 'stdout', 'text': chunk})\n"
        + "result = 1"
    )
    a = box.attack(code, "stdout flood on the socket")
    assert len(a.stdout) < 1 << 20, f"the kernel kept {len(a.stdout):,} characters of stdout"
    box.healthy()


def test_forged_end_desynchronises_the_next_answer(
    request: pytest.FixtureRequest, box: Box
) -> None:
    """A forged result and 'end': the server's real reply is then read as the next answer."""
    known_hole(request, box.backend, "state-persists")
    code = (
        WIRE
        + "protocol.send(sock, {'type': 'result', 'kind': 'json', 'pytype': 'int'}, b'7')\n"
        + "protocol.send(sock, {'type': 'end'})\n"
        + "result = 'forged answer to the next question'"
    )
    a = box.attack(code, "forge the next answer")
    assert a.value == 7
    box.healthy()


# --- HTML and JavaScript for the notebook -------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "</code></pre></details><script>alert(2)</script>",
    '<a href="javascript:alert(1)">click</a>',
    "<iframe srcdoc='<script>alert(3)</script>'></iframe>",
]

_TAG = re.compile(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>")
_ALLOWED_TAGS = {
    "div", "small", "b", "i", "details", "summary", "pre", "code",
    "table", "thead", "tbody", "tr", "th", "td", "p", "span", "br",
}  # fmt: skip


_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.S)


def _assert_inert_html(html: str) -> None:
    for css in _STYLE_BLOCK.findall(html):  # dataask's own stylesheet, nothing from the answer
        assert "<" not in css and "alert" not in css and "url(" not in css, css[:200]
    html = _STYLE_BLOCK.sub("", html)
    for m in _TAG.finditer(html):
        tag, attrs = m.group(1).lower(), m.group(2)
        assert tag in _ALLOWED_TAGS, f"unexpected <{tag}> in rendered HTML: {m.group(0)[:80]}"
        assert not re.search(r"\bon\w+\s*=", attrs), f"event handler in HTML: {m.group(0)[:80]}"
        assert "javascript:" not in attrs.lower(), m.group(0)[:80]


@pytest.mark.parametrize(
    "shape",
    [
        "result = XSS[0]",
        "result = XSS",
        "result = {x: x for x in XSS}",
        "result = pd.DataFrame({x: [x] for x in XSS}, index=pd.Index(['r'], name=XSS[1]))",
        "result = pd.Series(XSS, index=XSS, name=XSS[2])",
        "print(*XSS)\nresult = XSS[3]",
        "raise ValueError(' '.join(XSS))\nresult = 1",
        "result = px.bar(x=XSS, y=[1] * len(XSS), title=XSS[1])",
    ],
    ids=["str", "list", "dict", "frame", "series", "stdout", "error", "figure"],
)
def test_html_injection_is_escaped(box: Box, shape: str) -> None:
    code = f"XSS = {XSS!r}\n{shape}"
    question = "render this " + XSS[0] + XSS[3]
    a = box.attack(code, question)
    html = a._repr_mimebundle_()["text/html"]
    _assert_inert_html(html)
    assert "&lt;script&gt;" in html  # the payloads are there, as text
    box.healthy()


def test_widget_frontend_never_parses_data_as_html() -> None:
    """The widgets' JavaScript puts answer data in the page with textContent, never as HTML."""
    import dataask_jupyter

    root = Path(dataask_jupyter.__file__).parent
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    found = [
        f"{p.relative_to(root)}:{n}"
        for p in sorted(root.rglob("*.js"))
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if sinks.search(line) and not line.lstrip().startswith(("//", "*", "/*"))
    ]
    assert not found, f"HTML sinks in widget code: {found}"
