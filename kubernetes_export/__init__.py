"""Export a Titan deployment to the Zero to JupyterHub and Dask Gateway Helm charts.

``python -m kubernetes_export --out DIR`` reads ``titan.yaml`` and ``profiles/`` through Titan's own
loaders and writes chart values, the Titan service's run script and a report of what does not carry
over. Everything is validated (Titan's schemas, the chart's values schema, KubeSpawner itself and the
Kubernetes pod schema) before a file is written.
"""
