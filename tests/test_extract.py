from __future__ import annotations

import pytest

from dataask_jupyter.errors import CodeExtractionError
from dataask_jupyter.extract import check_code, extract_code


def test_fenced_with_prose() -> None:
    reply = "Sure, here it is:\n```python\nresult = df['a'].sum()\n```\nThis sums column a."
    assert extract_code(reply).code == "result = df['a'].sum()"


def test_untagged_fence_and_py_tag() -> None:
    assert extract_code("```\nresult = 1\n```").code == "result = 1"
    assert extract_code("```py\nresult = 2\n```").code == "result = 2"


def test_bare_code_with_prose_around() -> None:
    reply = "The answer:\nx = df[df.a > 1]\nresult = len(x)\nHope this helps!"
    assert extract_code(reply).code == "x = df[df.a > 1]\nresult = len(x)"


def test_last_expression_becomes_result() -> None:
    ex = extract_code("```python\ntop = df.nlargest(3, 'b')\ntop['a'].tolist()\n```")
    assert ex.code.splitlines()[-1] == "result = top['a'].tolist()"
    assert ex.notes


def test_several_blocks_pick_the_one_with_result_and_keep_imports() -> None:
    reply = (
        "First import:\n```python\nimport numpy as np\n```\nThen a wrong try:\n"
        "```python\nresult = 0\n```\nActually:\n```python\nresult = np.mean(df.a)\n```"
    )
    code = extract_code(reply).code
    assert code.endswith("result = np.mean(df.a)")
    assert "import numpy as np" in code


def test_unterminated_fence() -> None:
    assert extract_code("```python\nresult = 3\n").code == "result = 3"


def test_no_code_and_no_result() -> None:
    with pytest.raises(CodeExtractionError, match="no Python code"):
        extract_code("I cannot answer that.")
    with pytest.raises(CodeExtractionError, match="result"):
        extract_code("```python\nx = 1\n```")
    with pytest.raises(CodeExtractionError, match="SyntaxError"):
        extract_code("```python\nresult = (1 +\n```")


@pytest.mark.parametrize(
    "code,needle",
    [
        ("import os\nresult = 1", "'os'"),
        ("from subprocess import run\nresult = 1", "'subprocess'"),
        ("result = ().__class__.__bases__[0].__subclasses__()", "__subclasses__"),
        ("result = getattr(pd, '__buil' + 'tins__')", "getattr"),
        ("result = pd.read_csv('/etc/passwd')", "read_csv"),
        ("df.to_csv('/tmp/x.csv')\nresult = 1", "to_csv"),
        ("result = eval('1+1')", "eval"),
        ("result = open('/etc/shadow').read()", "open"),
        ("result = pd.io.common.os.system('id')", "system"),
        ("df.to_csv(path_or_buf='/tmp/x.csv')\nresult = 1", "to_csv"),
        ("df.to_json('/tmp/x.json')\nresult = 1", "to_json"),
        ("df.to_excel('/tmp/x.xlsx')\nresult = 1", "to_excel"),
        ("result = df.to_clipboard()", "to_clipboard"),
        ("fig = px.line(df)\nfig.write_html('/tmp/x.html')\nresult = fig", "write_html"),
        ("result = pio.write_image(px.line(df), '/tmp/x.png')", "write_image"),
        ("result = px.line(df).to_image()", "to_image"),
        ("result = np.load('/tmp/x.npy')", "np.load"),
        ("import numpy as n\nn.savetxt('/tmp/x', df.values)\nresult = 1", "np.savetxt"),
        ("from numpy import fromfile\nresult = fromfile('/etc/shadow')", "np.fromfile"),
        ("from pandas import read_csv\nresult = read_csv('/etc/passwd')", "read_csv"),
        ("with pd.ExcelWriter('/tmp/x.xlsx') as w:\n    df.to_excel(w)\nresult = 1", "ExcelWriter"),
        ("import matplotlib.pyplot as plt\nplt.savefig('/tmp/x.png')\nresult = 1", "savefig"),
    ],
)
def test_static_checks_refuse(code: str, needle: str) -> None:
    problems = check_code(code)
    assert problems and any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    "code",
    [
        "result = df.groupby('region')['revenue'].sum().nlargest(3)",
        "import numpy as np\nimport datetime as dt\nresult = np.mean(df['a'])",
        "result = df[df['OSE'] > 1].shape[0]",  # column names are data, not words to fear
        "result = px.bar(prev, title='system exec eval')",
        "result = getattr(df, 'shape')[0]",
        # harmless look-alikes of file access: without a path these return text
        "fig = px.line(df, x='m', y='v')\nresult = fig.to_json()",
        "result = df.to_csv(index=False)",
        "result = df.to_csv(None, sep=';')",
        "result = df.head().to_json(orient='records')",
        "result = df.to_html()",
        "result = df.to_string()",
        "import plotly.io as pio\nresult = pio.to_json(px.line(df))",
        "import plotly.io\nresult = plotly.io.to_html(px.line(df))",
        "result = df['date'].dt.to_period('M').astype(str)",
        "result = df.to_dict('records')",
        "import json\nresult = json.loads(df.to_json())",
        "result = df.read_count.sum()",  # a column named like a reader
    ],
)
def test_static_checks_allow_ordinary_code(code: str) -> None:
    assert check_code(code) == []


def test_result_of_show_keeps_the_figure() -> None:
    reply = (
        "```python\nfig = px.line(prev, x='a', y='b')\n"
        "if prev is not None:\n    result = fig.show()\n```"
    )
    out = extract_code(reply)
    assert out.code.splitlines()[-1] == "    result = fig"
    assert "kept the figure instead of the value of .show()" in out.notes
    assert extract_code("```python\nresult = df.show_me()\n```").notes == ()
