"""The Kubernetes objects of deploy/z2jh: the user pod rendered from our values the way
zero-to-jupyterhub does (its hub config hands ``singleuser.*`` to KubeSpawner, whose ``make_pod``
builds the pod), plus our NetworkPolicy, validated offline with ``kubernetes-validate --strict``.
"""

from __future__ import annotations

import asyncio
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

kubespawner = pytest.importorskip("kubespawner")

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "deploy" / "z2jh" / "values.yaml"
POLICY = ROOT / "deploy" / "z2jh" / "networkpolicy.yaml"
K8S_VERSION = "1.30.0"

# The z2jh hub config's table: KubeSpawner trait <- singleuser.<key> (the ones our values use).
Z2JH_TRAITS = {
    "uid": "uid",
    "fs_gid": "fsGid",
    "extra_containers": "extraContainers",
    "environment": "extraEnv",
    "extra_pod_config": "extraPodConfig",
    "service_account": "serviceAccountName",
    "mem_limit": "memory.limit",
    "mem_guarantee": "memory.guarantee",
    "cpu_limit": "cpu.limit",
    "cpu_guarantee": "cpu.guarantee",
    "container_security_context": "containerSecurityContext",
    "pod_security_context": "podSecurityContext",
}


def _get(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# KubeSpawner loads a client configuration when it is made; make_pod never calls the API.
OFFLINE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: offline, user: {token: offline}}]
contexts: [{name: offline, context: {cluster: offline, user: offline}}]
current-context: offline
"""


def render_pod(values: dict[str, Any], user: str = "alice") -> dict[str, Any]:
    """The user pod z2jh would create for ``user`` from ``values``, as a plain manifest."""
    import tempfile

    from jupyterhub.objects import Hub, Server
    from kubernetes_asyncio.client import ApiClient
    from kubernetes_asyncio.config import kube_config
    from traitlets.config import Config

    single = values["singleuser"]
    c = Config()
    for trait, key in Z2JH_TRAITS.items():
        value = _get(single, key)
        if value is not None:
            setattr(c.KubeSpawner, trait, copy.deepcopy(value))
    image = _get(single, "image.name")
    if image:
        tag = _get(single, "image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    c.KubeSpawner.volumes = copy.deepcopy(_get(single, "storage.extraVolumes") or [])
    c.KubeSpawner.volume_mounts = copy.deepcopy(_get(single, "storage.extraVolumeMounts") or [])
    c.KubeSpawner.namespace = "jhub"

    class _User:
        name = user
        id = 1
        url = f"/user/{user}/"
        spawners: dict[str, Any] = {}

        def __init__(self) -> None:
            self.server = Server(base_url=self.url)

    with (
        tempfile.NamedTemporaryFile("w", suffix=".kubeconfig") as kc,
        pytest.MonkeyPatch.context() as mp,
    ):
        kc.write(OFFLINE_KUBECONFIG)
        kc.flush()
        mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kc.name)

        async def make() -> Any:  # KubeSpawner makes its (unused) API client on a running loop
            spawner = kubespawner.KubeSpawner(
                config=c, user=_User(), hub=Hub(), _mock=True, api_token="not-a-real-token"
            )
            pod = await spawner.get_pod_manifest()  # KubeSpawner.make_pod, as z2jh starts it
            async with ApiClient() as api:
                return api.sanitize_for_serialization(pod)

        manifest: dict[str, Any] = asyncio.run(make())
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    return manifest


def _validate(manifests: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    exe = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert exe, "kubernetes-validate is not installed (scripts/setup test)"
    return subprocess.run(
        [exe, "--strict", "--kubernetes-version", K8S_VERSION, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def pod(values: dict[str, Any]) -> dict[str, Any]:
    return render_pod(values)


def test_rendered_pod_and_policy_validate_strictly(pod: dict[str, Any], tmp_path: Path) -> None:
    policy = yaml.safe_load(POLICY.read_text())
    r = _validate([pod, policy], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" passed for resource ") == 2, r.stdout


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def test_sidecar_is_locked_down(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec.get("shareProcessNamespace") in (None, False)
    sidecar = _container(pod, "dataask-sandbox")
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sidecar["args"] == ["--sidecar", "/run/dataask"]
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert set(mounts) == {"/run/dataask", "/tmp"}  # nothing of the user's home
    assert mounts["/run/dataask"]["readOnly"] is True
    assert "limits" in sidecar["resources"] and "memory" in sidecar["resources"]["limits"]
    # the image's tag is the package version (a mismatch is reported by the protocol check)
    import dataask_jupyter

    assert sidecar["image"].endswith(":" + dataask_jupyter.__version__)


def test_llm_secret_reaches_the_notebook_only(pod: dict[str, Any]) -> None:
    notebook = _container(pod, "notebook")
    env = {e["name"]: e for e in notebook["env"]}
    assert env["DATAASK_LLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "dataask-llm"
    assert env["DATAASK_SANDBOX"]["value"] == "sidecar"
    sock = next(m for m in notebook["volumeMounts"] if m["name"] == "dataask-socket")
    assert sock["mountPath"] == "/run/dataask" and not sock.get("readOnly")
    sidecar = _container(pod, "dataask-sandbox")
    assert all("secretKeyRef" not in str(e) for e in sidecar.get("env", []))
    assert not sidecar.get("envFrom")
    assert "JUPYTERHUB_API_TOKEN" not in str(sidecar)


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
        ("allowPrivilegeEscalation", "allowPriviledgeEscalation"),
        ("sizeLimit", "sizelimit"),
    ],
)
def test_a_misspelt_field_fails(
    values: dict[str, Any], tmp_path: Path, good: str, bad: str
) -> None:
    broken = yaml.safe_load(re.sub(rf"\b{good}\b", bad, VALUES.read_text()))
    r = _validate([render_pod(broken)], tmp_path)
    assert r.returncode != 0, r.stdout
    assert bad in r.stdout + r.stderr


def test_a_misspelt_policy_field_fails(tmp_path: Path) -> None:
    text = POLICY.read_text().replace("policyTypes", "policyType")
    r = _validate([yaml.safe_load(text)], tmp_path)
    assert r.returncode != 0 and "policyType" in r.stdout + r.stderr
