"""Share links: notebooks published as static reports or live dashboards, with access control,
expiry, revocation and view counts. The link is the gate; JupyterHub shares carry dashboard access."""
