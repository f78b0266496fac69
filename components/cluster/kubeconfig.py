"""The kubeconfig the Kubernetes provider (and a person, from the `kubeconfig` stack output) uses:
the cluster's endpoint and CA, and an exec credential plugin instead of a token. Pure: no Pulumi.

Why not the token DOKS returns: it expires after 7 days, and reading a fresh one on every run
(the `getKubernetesCluster` data source) mints a new API token each time — flooding the account's
token list (pulumi-digitalocean#77) and changing the provider's inputs on every preview, so
`pulumi preview --expect-no-changes` (a drift check) could never pass; and `refresh`/`destroy`,
which do not run the program, would still use the expired token stored in state. With the exec
plugin, the provider's inputs are stable (endpoint and CA only change with the cluster), and
every client — `up`, `refresh`, `destroy`, kubectl — asks `doctl` for a short-lived credential
when it connects: `doctl kubernetes cluster kubeconfig exec-credential`, exactly what
`doctl kubernetes cluster kubeconfig save` writes. The runner needs `doctl` on its PATH and a
DigitalOcean token in `DIGITALOCEAN_ACCESS_TOKEN` (or `doctl auth init`).
"""

from __future__ import annotations

import yaml

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def exec_credential_args(cluster_id: str) -> list[str]:
    """`doctl` arguments that print an ExecCredential for the cluster (its token is minted for the
    connection, never stored)."""
    return [
        "kubernetes",
        "cluster",
        "kubeconfig",
        "exec-credential",
        "--version=v1beta1",
        cluster_id,
    ]


def exec_kubeconfig(name: str, cluster_id: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig for one cluster: `ca_data` is the base64 CA certificate DOKS reports."""
    context = f"do-{name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
            }
        ],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": f"{context}-doctl"}}
        ],
        "current-context": context,
        "users": [
            {
                "name": f"{context}-doctl",
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": "doctl",
                        "args": exec_credential_args(cluster_id),
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)
