"""What every part of Titan shares: names, rules and adapters that the spawner, the gateway and
the service meet in. Nothing here imports from ``spawner``, ``gateway`` or ``service``."""
