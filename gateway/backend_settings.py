"""The settings of the gateway's backend (``c.DockerBackend.<name>``; gateway/configure.py sets
them from titan.yaml). A mixin of :class:`gateway.backend.DockerBackend`, which reads them from its
own config section."""

from __future__ import annotations

from traitlets import Enum, Float, HasTraits, Integer, Unicode

from core.engine.factory import ENGINES
from core.profiles import PROFILES_DIR


class BackendSettings(HasTraits):
    deployment = Unicode(
        "titan",
        config=True,
        help="""Titan deployment name: containers get the label titan.deployment=<name> and the
        name prefix <name>-dask-; only servers of this deployment can own clusters. Default "titan".""",
    )

    profiles_dir = Unicode(
        str(PROFILES_DIR),
        config=True,
        help="""Directory of the profile YAML files; their `dask` section gives the worker sizes,
        the scheduler size and the limits. Re-read when a file changes. Default: profiles/.""",
    )

    container_user = Unicode(
        "1000:1000",
        config=True,
        help="""uid:gid the scheduler and workers run as (the images' jovyan user); the cluster's
        TLS certificate and key files (see tls_dir) belong to it. Default "1000:1000".""",
    )

    server_check_period = Float(
        10.0,
        config=True,
        help="""Seconds between passes that stop clusters whose server container is gone and remove
        containers that no active cluster or worker owns. Default 10.""",
    )

    control_token = Unicode(
        "",
        config=True,
        help="""Secret the hub presents to ask for a server's clusters to be stopped (POST
        /api/titan/v1/server-stopped). Empty disables that route. Default "".""",
    )

    docker_threads = Integer(8, min=1, config=True,
                             help="Threads running Docker API calls (and connections kept to the engine). Default 8.")

    tls_dir = Unicode(
        "",
        config=True,
        help="""Directory (private to the gateway: 0700, on this host) holding one directory per
        cluster with its TLS certificate and key, bind-mounted read-only into its containers.
        gateway/configure.py puts it in the state directory, so clusters keep it across a gateway
        restart. Default "": a temporary directory, removed when the gateway stops.""",
    )

    closed_worker_check_period = Float(
        1.0,
        min=0.1,
        config=True,
        help="""Seconds between checks, while a cluster is retiring workers, for retired workers
        whose container has exited: they are removed then instead of at the scheduler's next
        heartbeat. No Docker call while no worker is retiring. Default 1.""",
    )

    gpu_db_url = Unicode(
        "",
        config=True,
        help="""The spawner's GPU allocation database (sqlalchemy URL): workers asking for GPUs draw
        from the same units as servers. gateway/configure.py points it at state/gpu-allocations.sqlite,
        as jupyterhub_config.py does for the spawner. Default "": workers cannot have GPUs.""",
    )

    gpu_inventory_xml = Unicode(
        "",
        config=True,
        help="""Read the host's GPUs from this `nvidia-smi -q -x` file instead of asking the driver, as
        TitanDockerSpawner.gpu_inventory_xml does (the same setting). Default "": discover.""",
    )

    dashboard_gate_url = Unicode(
        "",
        config=True,
        help="""Where the gateway's proxy reaches this gateway's private API (``http://127.0.0.1:<api_port>``):
        cluster dashboards are routed through its login gate there (gateway.dashboards) instead of straight
        to the scheduler. Default "": the private API's own address.""",
    )

    engine_kind = Enum(
        ENGINES,
        "docker",
        config=True,
        help="""The engine running schedulers and workers: "docker" (containers on this host, in their
        server's network namespace) or "swarm" (services across a swarm's nodes, on their server's
        overlay network: gateway.swarm). titan.yaml's `engine:`. Default "docker".""",
    )

    swarm_manager = Unicode(
        "",
        config=True,
        help="""With engine_kind "swarm": a manager's Docker API URL (DOCKER_HOST form, e.g.
        "tcp://10.0.0.10:2376" or "unix:///var/run/docker.sock"); titan.yaml's swarm.manager.
        Default "": DOCKER_HOST or the local socket.""",
    )

    swarm_published_ports = Unicode(
        "30000-30999",
        config=True,
        help="""With engine_kind "swarm": the node ports ("low-high") schedulers publish their TLS,
        dashboard and API ports on (host mode), where the gateway reaches them; each node's firewall
        admits only the hub host to them. titan.yaml's swarm.published_ports. Default "30000-30999".""",
    )

    swarm_interface = Unicode(
        "eth0",
        config=True,
        help="""With engine_kind "swarm": the network interface of a worker's container on its overlay
        network (the first network a service joins is eth0), which the worker advertises to the
        scheduler and the other workers. Default "eth0".""",
    )
