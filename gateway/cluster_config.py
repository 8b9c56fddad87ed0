"""``DockerClusterConfig``: one cluster's configuration, as dask-gateway stores it with the cluster."""

from __future__ import annotations

from dask_gateway_server.backends.base import ClusterConfig
from dask_gateway_server.traitlets import Command
from traitlets import Dict, Float, Integer, Unicode


class DockerClusterConfig(ClusterConfig):
    """One cluster's configuration. Titan fills ``image``, ``origin_*``, the worker size and
    ``user_limits`` per cluster; the rest comes from ``c.ClusterConfig`` in gateway/config.py."""

    scheduler_cmd = Command(["dask", "scheduler"], config=True,
                            help="Command starting the scheduler in its container. Default: dask scheduler.")
    worker_cmd = Command(["dask", "worker"], config=True,
                         help="Command starting a worker in its container. Default: dask worker.")
    worker_cores = Float(1, min=0.01, config=True,
                         help="CPU cores of a worker container (a CPU quota; may be fractional). Default 1.")
    worker_gpus = Integer(0, min=0, help="GPUs each worker holds (the cluster's worker_gpus option). Default 0.")
    worker_gpu_type = Unicode("", help="GPU type (a name in the profile data's gpu_types) of the workers' GPUs.")
    scheduler_cores = Float(1, min=0.01, config=True,
                            help="CPU cores of the scheduler container (may be fractional). Default 1.")
    image = Unicode("", help="Image of the scheduler and workers: the image of the cluster's server.")
    origin_server = Unicode("", help="Name of the server the cluster belongs to ('' is the default server).")
    origin_container = Unicode("", help="Container id of that server; the cluster stops when it is gone.")
    origin_network = Unicode("", help="On Swarm: the network of that server's service, which the cluster's "
                             "services join ('' on one host: they join the server's namespace).")
    user_limits = Dict(help="The owner's limits when the cluster was created (gateway.limits.Limits fields).")
