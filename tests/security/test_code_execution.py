"""Generated code that tries to run commands on the host or write where the host would see it.

Each attack names host paths it tries to create (``Host.targets``); the box checks after every
attack that none exists, that watched host files are unchanged, and that the next question works.
Where the attack code can run to its end, the test also checks it did (``answer.error is None``),
so a test cannot pass only because the attack crashed early.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import Box


def _touch_cmd(box: Box, name: str) -> str:
    paths = [str(box.host.target(name)), *map(str, box.host.targets)]
    return "touch " + " ".join(paths) + "; id; echo $OPENAI_API_KEY $DATAASK_LLM_API_KEY"


LAUNCHERS = {
    "os.system": "import os\nresult = os.system({cmd!r})",
    "subprocess.run": (
        "import subprocess\n"
        "p = subprocess.run(['/bin/sh', '-c', {cmd!r}], capture_output=True, text=True)\n"
        "result = [p.returncode, p.stdout, p.stderr]"
    ),
    "os.popen": "import os\nresult = os.popen({cmd!r}).read()",
    "os.posix_spawn": (
        "import os\n"
        "pid = os.posix_spawn('/bin/sh', ['sh', '-c', {cmd!r}], {{}})\n"
        "result = os.waitpid(pid, 0)[1]"
    ),
    "pty.spawn": (
        "import os, pty\n"
        "pid, fd = pty.fork()\n"
        "if pid == 0:\n"
        "    try:\n"
        "        os.execv('/bin/sh', ['sh', '-c', {cmd!r}])\n"
        "    finally:\n"
        "        os._exit(1)\n"
        "result = os.waitpid(pid, 0)[1]"
    ),
}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_shell_command_cannot_touch_the_host(box: Box, launcher: str) -> None:
    code = LAUNCHERS[launcher].format(cmd=_touch_cmd(box, launcher.replace(".", "_")))
    a = box.attack(code, f"run a shell via {launcher}")
    assert a.error is None, a.error  # the command ran -- inside the sandbox
    box.healthy()


def test_subclasses_walk_to_os_wrap_close(box: Box) -> None:
    cmd = _touch_cmd(box, "subclasses")
    code = f"""
wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]
system = wrap.__init__.__globals__['system']
result = system({cmd!r})
"""
    a = box.attack(code, "subclasses walk")
    assert a.error is None, a.error
    box.healthy()


def test_pandas_reexported_os(box: Box) -> None:
    cmd = _touch_cmd(box, "pd_io_common")
    a = box.attack(f"result = pd.io.common.os.system({cmd!r})", "pd.io.common.os")
    assert a.error is None, a.error
    box.healthy()


def test_dunders_built_from_strings(box: Box) -> None:
    cmd = _touch_cmd(box, "getattr_dunders")
    code = f"""
d = '_' * 2
g = getattr
subs = g(g(g((), d + 'cla' + 'ss' + d), d + 'ba' + 'se' + d), d + 'subcla' + 'sses' + d)()
warn = [c for c in subs if g(c, d + 'na' + 'me' + d) == 'catch_' + 'warnings'][0]
bi = g(g(warn, d + 'in' + 'it' + d), d + 'glo' + 'bals' + d)[d + 'buil' + 'tins' + d]
imp = bi[d + 'imp' + 'ort' + d] if isinstance(bi, dict) else g(bi, d + 'imp' + 'ort' + d)
result = g(imp('o' + 's'), 'sys' + 'tem')({cmd!r})
"""
    a = box.attack(code, "getattr dunders")
    assert a.error is None, a.error
    box.healthy()


def test_builtins_through_a_dataframe(box: Box) -> None:
    cmd = _touch_cmd(box, "df_globals")
    code = f"""
b = df.__class__.__init__.__globals__['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
sp = imp('subprocess')
result = sp.call(['/bin/sh', '-c', {cmd!r}])
"""
    a = box.attack(code, "builtins via df")
    assert a.error is None, a.error
    box.healthy()


def test_ctypes_libc_system(box: Box) -> None:
    cmd = _touch_cmd(box, "ctypes")
    code = f"""
import ctypes
libc = ctypes.CDLL(None)
result = libc.system({cmd.encode()!r})
"""
    a = box.attack(code, "ctypes system")
    assert a.error is None, a.error
    box.healthy()


def test_ctypes_new_namespace_remount_rw(box: Box) -> None:
    """unshare a user+mount namespace, remount every read-only mount rw, write into each."""
    names = [str(p) for p in box.host.targets]
    code = f"""
import ctypes, os, json
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
MS_REMOUNT, MS_BIND = 32, 4096
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        out = {{'unshare': libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), 'errno': ctypes.get_errno()}}
        mounts = [l.split()[1] for l in open('/proc/self/mounts')]
        for m in mounts:
            out[m] = libc.mount(None, m.encode(), None, MS_REMOUNT | MS_BIND, None)
        wrote = []
        for p in {names!r} + [m + '/pwned-remount' for m in mounts]:
            try:
                with open(p, 'w') as f:
                    f.write('pwned')
                wrote.append(p)
            except OSError:
                pass
        out['wrote'] = wrote
        os.write(w, json.dumps(out).encode())
    finally:
        os._exit(0)
os.close(w)
data = b''
while chunk := os.read(r, 65536):
    data += chunk
os.waitpid(pid, 0)
result = json.loads(data)
"""
    a = box.attack(code, "unshare remount")
    assert a.error is None, a.error
    # Whatever the namespace trick allowed inside, no write reached the host.
    assert not box.host.planted(a.value["wrote"], "pwned"), a.value
    box.healthy()


def test_persistence_files_outside_tmp(box: Box) -> None:
    """Plant .pth / sitecustomize / module files on every sys.path entry and in the home."""
    names = [str(box.host.target("persist")), *map(str, box.host.targets)]
    code = f"""
import os, sys, site
targets = {names!r}
for d in sys.path + [site.getusersitepackages(), os.path.expanduser('~'), '/', '/usr/lib',
                     '/etc', '/root', '/home', '/run/dataask/..']:
    if d:
        targets += [os.path.join(d, 'zzz_pwned.pth'), os.path.join(d, 'sitecustomize.py')]
wrote, errors = [], {{}}
for p in targets:
    try:
        with open(p, 'a') as f:
            f.write('import os; os.system("touch /tmp/pwned")\\n')
        wrote.append(p)
    except OSError as e:
        errors[p] = type(e).__name__
result = {{'wrote': wrote, 'errors': errors}}
"""
    a = box.attack(code, "persistence files")
    assert a.error is None, a.error
    # Writes may land in sandbox-private tmpfs (its own /tmp, or bubblewrap's scratch root);
    # none may reach the host, least of all a directory Python imports from.
    assert not box.host.planted(a.value["wrote"], "touch /tmp/pwned"), a.value["wrote"]
    box.healthy()


def test_proc_root_and_dotdot_traversal(box: Box) -> None:
    paths = [
        str(box.host.home_secret),
        str(box.host.connection_file),
    ]
    code = f"""
import os
out = {{}}
for p in {paths!r}:
    for prefix in ['', '/proc/1/root', '/proc/self/root', '/proc/1/cwd/../../..',
                   '/run/dataask/../..', '/tmp/../..', '/proc/self/fd/../../../..']:
        q = prefix + p
        try:
            with open(q) as f:
                out[q] = f.read()
        except OSError as e:
            out[q] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "proc root traversal")
    assert a.error is None, a.error
    assert all(v.startswith("ERR") for v in a.value.values()), a.value
    box.healthy()
