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
