"""Titan's Dask Gateway: a hub-managed dask-gateway-server whose Docker backend runs each user's
scheduler and workers as containers in the image of the server they come from.

Modules: ``backend`` (the ``DBBackendBase`` subclass), ``containers`` (pure container builders),
``options`` (cluster options from the profile data), ``limits`` (per-user limits), ``auth``
(JupyterHub tokens), ``routes`` (the gateway's HTTP additions), ``control`` (the hub's call when a
server stops), ``hub`` and ``configure``/``config`` (wiring).
"""
