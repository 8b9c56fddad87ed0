"""The settings of Titan's spawner (``c.TitanDockerSpawner.<name>``; jupyterhub_config.py sets them
from titan.yaml). A mixin of :class:`spawner.docker.TitanDockerSpawner`, which reads them from its
own config section."""

from __future__ import annotations

from traitlets import Bool, Dict, Float, HasTraits, Integer, Unicode

from core.profiles import PROFILES_DIR


class SpawnerSettings(HasTraits):
    profiles_dir = Unicode(
        str(PROFILES_DIR),
        config=True,
        help="""Directory of profile YAML files (every *.yaml in it, by name), validated against
        profiles/schema.json at start-up. Default: the repository's profiles/.
        Example: c.TitanDockerSpawner.profiles_dir = "/etc/titan/profiles"
        """,
    )

    deployment = Unicode(
        "titan",
        config=True,
        help="""Name of this Titan deployment. Containers get the label titan.deployment=<name>
        and the name prefix <name>-, so two deployments (or a test run) on one engine never
        touch each other's containers. Default: "titan".
        """,
    )

    home_volume_template = Unicode(
        "titan-home-{username}",  # jupyterhub_config.py gives <deployment>-home-{username} (titan.homes)
        config=True,
        help="""Docker volume holding a user's home (/home/jovyan). One per user, mounted by
        every server of that user, kept when servers stop. {username} is the escaped user name.
        Default: "titan-home-{username}".
        """,
    )

    homes_root = Unicode(
        "",
        config=True,
        help="""Directory on shared storage holding users' homes (titan.yaml swarm.homes_root): a
        server binds <homes_root>/<home volume name> at /home/jovyan instead of mounting its home
        volume, so the home is the same on every Swarm node (core.homes; docs/swarm-homes.md).
        Default "": home volumes. Example: "/srv/titan/homes".
        """,
    )

    network_pool = Unicode(
        "10.213.0.0/16",
        config=True,
        help="""IPv4 range that users' networks are cut from (titan.yaml network.pool): each user's
        servers and Dask containers share a network of their own, created at their first start on the
        first free subnet of the range, and removed when their last container is gone.
        Default "10.213.0.0/16". Example: "172.30.0.0/16".
        """,
    )

    network_subnet_prefix = Integer(
        24,
        config=True,
        help="""Prefix length of each user's network (titan.yaml network.subnet_prefix).
        Default 24 (254 containers a user).
        """,
    )

    host_cpus = Float(
        0.0,
        config=True,
        help="""CPUs this host offers servers; profiles needing more are shown disabled.
        Default 0: read from the Docker engine (docker info NCPU).
        """,
    )

    host_memory = Integer(
        0,
        config=True,
        help="""Bytes of memory this host offers servers; profiles needing more are shown
        disabled. Default 0: read from the Docker engine (docker info MemTotal).
        """,
    )

    gpu_db_url = Unicode(
        "sqlite:///titan-gpu.sqlite",
        config=True,
        help="""Database (any sqlalchemy URL) recording which GPU each server holds, so a hub
        restart rebuilds the same picture. jupyterhub_config.py puts it in state/.
        Default: sqlite:///titan-gpu.sqlite in the hub's working directory.
        """,
    )

    gpu_inventory_xml = Unicode(
        "",
        config=True,
        help="""Read the host's GPUs from this `nvidia-smi -q -x` file instead of asking the driver
        (NVML, then nvidia-smi). For hosts where the hub cannot see the driver, and for tests.
        Default "": discover.
        """,
    )

    dask_gateway = Dict(
        config=True,
        help="""Where servers reach Titan's Dask Gateway: {"address", "proxy_address", "public_address",
        "control_url", "control_token"} (gateway.hub.spawner_link builds it from titan.yaml). Servers get
        DASK_GATEWAY__* variables from it, and stopping a server stops its clusters.
        Default {}: no gateway.
        """,
    )

    titan_service_url = Unicode(
        "",
        config=True,
        help="""Where servers reach the Titan service (autosave, share links) directly, on the Titan address:
        given to them as TITAN_SERVICE_URL. jupyterhub_config.py sets it when the service runs.
        Default "": not given. Example: "http://10.213.0.1:8020/services/titan/"
        """,
    )

    idle_timeout = Float(
        0.0,
        config=True,
        help="""Seconds a server may stay idle (no kernel or terminal left, no activity) before it stops
        itself, for profiles without their own ``idle_timeout``. The server's jupyter_server does it
        (kernel and terminal culling, then ``shutdown_no_activity_timeout``); the hub notices at its next
        poll and stops the server's Dask clusters. 0: servers never stop themselves.
        Default 0; jupyterhub_config.py sets culling.timeout from titan.yaml. Example: 7200
        """,
    )

    idle_shutdown = Bool(
        True,
        config=True,
        help="""Whether servers stop themselves when idle (after their profile's ``idle_timeout``, else
        ``idle_timeout`` above). False: no server stops itself, whatever the profiles say.
        Default True; jupyterhub_config.py sets culling.enabled from titan.yaml.
        """,
    )
