"""Inputs for the kubernetes_export tests: titan.yaml variants and a profile folder using every feature."""

from __future__ import annotations

from pathlib import Path

CLIENT_ID = "Iv1.clientid0123456789"
CLIENT_SECRET = "s3cret-0123456789abcdef0123456789abcdef"  # a made-up value the output must never hold

SETTINGS = f"""\
deployment: acme
hub: {{public_url: "https://titan.acme.example", named_server_limit_per_user: 5, admin_users: [root-admin]}}
auth:
  github:
    client_id: {CLIENT_ID}
    client_secret: {CLIENT_SECRET}
    allowed_organizations: [acme, "partner:analysts"]
    allowed_users: [outside-friend]
    admin_team: "acme:platform"
    autosave_push: true
culling: {{timeout: 3h, every: 120}}
gateway: {{idle_timeout: 900}}
"""

EVERY_FEATURE = """\
gpu_types:
  T4: {match: "T4"}
  A100: {match: "A100", display_name: NVIDIA A100}
profiles:
  - display_name: Team box
    slug: team
    default: true
    description: For the data team
    image: minimal
    resources: {cpu: 0.5, memory: 1.5G}
    access: {groups: ["acme:data-team"], users: [carol]}
    idle_timeout: 45m
    clone: [https://github.com/acme/handbook.git]
    profile_options:
      image:
        display_name: Environment
        choices:
          minimal: {display_name: Minimal, override: {image: minimal}}
          datascience: {display_name: Data science, description: More libraries, default: true,
                        override: {image: datascience}}
      cpu:
        display_name: CPUs
        choices:
          "1": {display_name: "1", override: {resources: {cpu: 1}}}
          "2": {display_name: "2", override: {resources: {cpu: 2}}}
      memory:
        display_name: Memory
        choices:
          4G: {display_name: 4 GB, override: {resources: {memory: 4G}}}
        unlisted_choice: {enabled: true, display_name: Other, validation_regex: "[0-9]+G",
                          validation_message: "Write it like 8G", override: {resources: {memory: "{value}"}}}
  - display_name: Add a GPU
    slug: add-gpu
    image: datascience
    resources: {cpu: 4, memory: 16G}
    access: {groups: ["acme:gpu-users"]}
    profile_options:
      gpu:
        display_name: GPU
        choices:
          none: {display_name: None, default: true, override: {resources: {gpu: {type: null}}}}
          t4: {display_name: T4, override: {resources: {gpu: {type: T4}}}}
          a100x2: {display_name: 2 A100, override: {resources: {gpu: {type: A100, count: 2}}}}
  - display_name: Big GPU
    slug: big-gpu
    image: datascience
    resources: {cpu: 8, memory: 64G, gpu: {type: A100, count: 1}}
    profile_options:
      gpu_count:
        display_name: GPUs
        choices:
          "1": {display_name: "1", override: {resources: {gpu: {count: 1}}}}
          "2": {display_name: "2", override: {resources: {gpu: {count: 2}}}}
        unlisted_choice: {enabled: true, validation_regex: "[1-4]", validation_message: "1 to 4",
                          override: {resources: {gpu: {count: "{value}"}}}}
dask:
  worker_cores: {choices: [1, 2]}
  worker_memory: {choices: [1G, 4G], default: 4G}
  worker_gpus: {choices: [0, 1], types: [T4]}
  scheduler: {cores: 0.5, memory: 512M}
  limits: {max_clusters: 1, max_cores: 4, max_memory: 8G, max_workers: 4}
  group_limits:
    "acme:data-team": {max_cores: 16, max_workers: 8}
    "acme:gpu-users": {max_cores: 12, max_memory: 64G}
"""


def write_settings(folder: Path, text: str = SETTINGS, extra: str = "") -> Path:
    path = folder / "titan.yaml"
    path.write_text(text + extra)
    return path


def write_profiles(folder: Path, text: str = EVERY_FEATURE) -> Path:
    profiles = folder / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "profiles.yaml").write_text(text)
    return profiles
