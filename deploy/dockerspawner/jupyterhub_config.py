# JupyterHub with DockerSpawner and dataask: every user gets a notebook container and, beside it,
# a sandbox container where the LLM-written code runs (dataask_hooks.py, next to this file).
# Copy both files to the Hub's config directory; see docs/deploy.md for the whole recipe.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dataask_hooks import SandboxSettings, install

c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
# A Jupyter image with dataask-jupyter installed; its tag equals the dataask-jupyter version,
# like the sandbox image's below.
c.DockerSpawner.image = "REGISTRY/dataask-notebook:0.1.0"
c.DockerSpawner.network_name = "jupyterhub"  # the notebook container's network (not the sandbox's)
c.DockerSpawner.remove = True
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = "jupyterhub"

# The sandbox container each user gets (no network, read-only, no capabilities, these limits).
install(
    c,
    SandboxSettings(
        image="REGISTRY/dataask-sandbox:0.1.0",
        memory_mb=2048,
        cpus=1.0,
        pids=64,
        tmpfs_mb=64,
    ),
)

# The LLM endpoint for everyone: users never type a key. These reach the notebook container only
# (the kernel); the sandbox container's environment is fixed by dataask_hooks.run_options.
c.DockerSpawner.environment = {
    "DATAASK_LLM_BASE_URL": os.environ["DATAASK_LLM_BASE_URL"],
    "DATAASK_LLM_API_KEY": os.environ["DATAASK_LLM_API_KEY"],
    "DATAASK_LLM_MODEL": os.environ.get("DATAASK_LLM_MODEL", ""),
}
