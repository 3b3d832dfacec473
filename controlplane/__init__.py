"""AIPress control plane: API, auth + RBAC, database, provisioning engine."""
