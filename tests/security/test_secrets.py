"""Generated code that hunts for secrets: host files, the home, the kernel's connection file, the
environment, other processes, inherited file descriptors, memory.

The box checks after every attack that the API key and every host sentinel's contents appear
nowhere in what came back (value, stdout, error, attempts, the rendered mimebundle, the prompts).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.security.conftest import Box, known_hole


def _host_shadow_hashes() -> list[str]:
    try:
        lines = Path("/etc/shadow").read_text().splitlines()
    except OSError:
        return []
    return [f[1] for f in (ln.split(":") for ln in lines) if len(f) > 1 and len(f[1]) > 3]


def test_etc_shadow(box: Box) -> None:
    box.host.forbidden += [h for h in _host_shadow_hashes() if h not in box.host.forbidden]
    code = """
import os
out = {}
for p in ['/etc/shadow', '/etc/gshadow', '/proc/1/root/etc/shadow', '/proc/self/root/etc/shadow',
          '/../../etc/shadow', '/etc/sudoers']:
    try:
        with open(p) as f:
            out[p] = f.read()
    except OSError as e:
        out[p] = 'ERR ' + type(e).__name__
try:
    out['read_csv'] = pd.read_csv('/etc/shadow', sep=':', header=None).to_string()
except Exception as e:
    out['read_csv'] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "read /etc/shadow")
    assert a.error is None, a.error
    assert all(v.startswith("ERR") for v in a.value.values()), a.value
    box.healthy()


def test_users_home(box: Box) -> None:
    home = str(Path.home())
    code = f"""
import os, glob
out = {{'home_env': os.path.expanduser('~'), 'listings': {{}}, 'files': {{}}}}
for d in [{home!r}, '/root', '/home', os.path.expanduser('~')]:
    try:
        out['listings'][d] = sorted(os.listdir(d))
    except OSError as e:
        out['listings'][d] = 'ERR ' + type(e).__name__
for p in [{str(box.host.home_secret)!r}, {home!r} + '/.bash_history', {home!r} + '/.ssh/id_rsa',
          {home!r} + '/.netrc', {home!r} + '/.config/openai/key']:
    try:
        out['files'][p] = open(p).read()
    except OSError as e:
        out['files'][p] = 'ERR ' + type(e).__name__
out['glob'] = glob.glob('/home/*/.ssh/*') + glob.glob('/root/.*')
result = out
"""
    a = box.attack(code, "read the home")
    assert a.error is None, a.error
    assert all(v.startswith("ERR") for v in a.value["files"].values()), a.value["files"]
    listed = [x for v in a.value["listings"].values() if isinstance(v, list) for x in v]
    assert box.host.home_dir.name not in listed  # the real home is not there at all
    box.healthy()


def test_kernel_connection_file(box: Box) -> None:
    conn = str(box.host.connection_file)
    code = f"""
import os, glob
out = {{'direct': None, 'found': {{}}, 'cmdlines': []}}
try:
    out['direct'] = open({conn!r}).read()
except OSError as e:
    out['direct'] = 'ERR ' + type(e).__name__
try:
    from jupyter_core.paths import jupyter_runtime_dir
    dirs = [jupyter_runtime_dir()]
except Exception:
    dirs = []
dirs += [os.path.dirname({conn!r}), '/root/.local/share/jupyter/runtime', '/run/user',
         '/tmp', '/run', '/home']
for d in dirs:
    for p in glob.glob(os.path.join(d, '**', 'kernel-*.json'), recursive=True)[:50]:
        try:
            out['found'][p] = open(p).read()
        except OSError as e:
            out['found'][p] = 'ERR ' + type(e).__name__
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            out['cmdlines'].append(open(f'/proc/{{pid}}/cmdline', 'rb').read().decode())
        except OSError:
            pass
result = out
"""
    a = box.attack(code, "read the connection file")
    assert a.error is None, a.error
    assert a.value["direct"].startswith("ERR")
    assert not any("ipykernel" in c or "kernel-" in c for c in a.value["cmdlines"])
    box.healthy()


def test_proc_environ_of_every_process(box: Box) -> None:
    code = """
import os
out = {}
for pid in ['self', '1'] + [p for p in os.listdir('/proc') if p.isdigit()]:
    for what in ['environ', 'cmdline']:
        try:
            out[f'{pid}/{what}'] = open(f'/proc/{pid}/{what}', 'rb').read().decode('latin-1')
        except OSError as e:
            out[f'{pid}/{what}'] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "read /proc/*/environ")
    assert a.error is None, a.error
    assert not a.value["self/environ"].startswith("ERR")  # it read its own: the attack worked
    box.healthy()


def test_api_key_from_environment(box: Box) -> None:
    code = """
import os
keys = ['OPENAI_API_KEY', 'DATAASK_LLM_API_KEY', 'DATAASK_TEST_SECRET_TOKEN', 'API_KEY']
print(dict(os.environ))
result = {'env': dict(os.environ), 'keys': {k: os.environ.get(k) for k in keys},
          'getenv': os.getenv('OPENAI_API_KEY'), 'posix': dict(os.environb)}
"""
    a = box.attack(code, "print the api key")
    assert a.error is None, a.error
    assert all(v is None for v in a.value["keys"].values())
    assert not any("KEY" in k or "TOKEN" in k for k in a.value["env"])
    box.healthy()


def test_api_key_via_error_and_repair_prompt(box: Box) -> None:
    """An exception carrying the environment goes back to the LLM in repair prompts."""
    box.settings.max_repairs = 2
    code = (
        "import os\n"
        "raise RuntimeError(repr(dict(os.environ)) + open('/proc/1/environ').read())\n"
        "result = 1"
    )
    a = box.attack(code, "leak through the repair prompt")
    assert a.error is not None and "RuntimeError" in a.error
    assert len(a.attempts) == 3  # the error went back to the LLM twice; the box checked those
    box.healthy()


def test_secret_in_memory(box: Box) -> None:
    code = """
import gc, re
hits = [o for o in gc.get_objects() if isinstance(o, str) and ('sk-' in o or 'SECRET' in o)]
mem = []
with open('/proc/self/maps') as maps:
    regions = [l.split() for l in maps]
with open('/proc/self/mem', 'rb', 0) as m:
    budget = 400 << 20
    for r in regions:
        if 'r' not in r[1] or len(r) > 5 and r[5].startswith('['):
            continue
        lo, hi = (int(x, 16) for x in r[0].split('-'))
        for at in range(lo, min(hi, lo + budget), 1 << 20):
            try:
                m.seek(at)
                data = m.read(min(1 << 20, hi - at))
            except (OSError, OverflowError, ValueError, MemoryError):
                break
            budget -= len(data)
            mem += [data[i.start():i.start() + 80] for i in re.finditer(rb'sk-test-SECRET', data)]
result = {'gc': hits[:20], 'mem': [x.decode('latin-1') for x in mem[:20]], 'left': budget}
"""
    a = box.attack(code, "scan memory for the key")
    assert a.error is None, a.error
    box.healthy()


def test_inherited_file_descriptor(box: Box) -> None:
    """A kernel that leaks an fd (the secret file opened inheritable) into the sandbox's start."""
    fd = os.open(box.host.home_secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        box.session.sandbox.restart()
        code = """
import os
out = {}
for fd in range(0, 256):
    try:
        target = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        continue
    try:
        os.lseek(fd, 0, 0)
        data = os.read(fd, 4096).decode('latin-1')
    except OSError as e:
        data = 'ERR ' + type(e).__name__
    out[fd] = [target, data]
result = out
"""
        a = box.attack(code, "read inherited fds")
    finally:
        os.close(fd)
    assert a.error is None, a.error
    assert not any(str(box.host.home_secret) in t for t, _ in a.value.values()), a.value
    box.healthy()


@pytest.mark.slow
def test_filesystem_wide_search(box: Box) -> None:
    """Read every small file the sandbox can see, for three seconds, looking for secrets."""
    box.settings.exec_timeout = 6.0
    code = """
import os, time, re
deadline = time.monotonic() + 3.0
pat = re.compile(rb'(SENTINEL-[0-9a-f]{16}|sk-test-SECRET-[0-9a-f]{40})')
hits, seen = [], 0
for root, dirs, files in os.walk('/'):
    if root.startswith(('/proc', '/sys', '/dev')):
        dirs[:] = []
        continue
    dirs.sort(key=lambda d: d in ('usr', 'lib', 'site-packages', '.venv'))
    for name in files:
        p = os.path.join(root, name)
        try:
            if os.path.getsize(p) > 1 << 20:
                continue
            with open(p, 'rb') as f:
                data = f.read()
        except OSError:
            continue
        seen += 1
        hits += [(p, m.group(0).decode()) for m in pat.finditer(data)]
    if time.monotonic() > deadline:
        break
result = {'files_read': seen, 'hits': hits[:50]}
"""
    a = box.attack(code, "grep the filesystem")
    assert a.error is None, a.error
    assert a.value["files_read"] > 10
    assert a.value["hits"] == []
    box.healthy()


def test_home_directory_on_sys_path(
    request: pytest.FixtureRequest,
    box: Box,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A notebook that put a home (project) directory on sys.path before the sandbox started."""
    known_hole(request, box.backend, "syspath-bound")
    monkeypatch.syspath_prepend(str(box.host.syspath_dir))
    box.session.sandbox.restart()  # the sandbox starts while the directory is on sys.path
    p = str(box.host.syspath_dir / "notes.txt")
    code = f"""
try:
    result = open({p!r}).read()
except OSError as e:
    result = 'ERR ' + type(e).__name__
"""
    try:
        a = box.attack(code, "read a sys.path directory")
    finally:
        monkeypatch.undo()
    assert a.error is None, a.error
    assert a.value.startswith("ERR"), "a directory on the kernel's sys.path is readable"
    box.healthy()
