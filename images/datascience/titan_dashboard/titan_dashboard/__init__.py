"""Serve one notebook or script as a Voila or Panel dashboard behind JupyterHub's auth, and nothing else."""

__version__ = "1.0.0"
