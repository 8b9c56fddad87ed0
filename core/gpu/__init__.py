"""GPUs for Titan servers: discover the host's units (``inventory``), group them into profile types
(``types``) and hand out distinct units to servers (``allocator``).

Import the modules directly; this package imports nothing itself, so ``python -m core.gpu.check``
runs on a host with only the standard library.
"""
