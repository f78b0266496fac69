"""Plug-in mesh CA: istiod signs workload certificates with a per-cluster intermediate CA whose
root lives in stack config (encrypted), not in the cluster.

Why: a rebuilt cluster, or a DR stack made with `pulumi stack init --copy-config-from`, gets a new
intermediate under the same root, so workload identities and cross-cluster trust survive. The
`cacerts` Secret must exist before istiod starts, else istiod mints a self-signed root that no
other cluster trusts; hence `MeshCertificateAuthority.secret` goes into istiod's `depends_on`.
Where the tier allows it (not production), a missing root is generated and kept in the Pulumi
state. These are the pure builders; `MeshCertificateAuthority` is in `component.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.base import manifests, mesh

CACERTS = "cacerts"
CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
ORGANIZATION = "service-mesh"
# The intermediate signs workload certificates and nothing else.
INTERMEDIATE_USES = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"]


def intermediate_subject(cluster: str) -> dict[str, str]:
    return {"organization": ORGANIZATION, "common_name": f"{cluster} mesh intermediate CA"}


def cacerts_data(
    intermediate_cert: str, intermediate_key: str, root_cert: str, extra_roots: Sequence[str] = ()
) -> dict[str, str]:
    """The four files istiod reads from `cacerts`; extra roots are trusted during rotation."""

    def pem(text: str) -> str:
        return text if text.endswith("\n") else text + "\n"

    roots = pem(root_cert) + "".join(pem(r) for r in extra_roots)
    return {
        "ca-cert.pem": pem(intermediate_cert),
        "ca-key.pem": pem(intermediate_key),
        "root-cert.pem": roots,
        "cert-chain.pem": pem(intermediate_cert) + pem(root_cert),
    }


def cacerts_metadata() -> dict[str, Any]:
    return manifests.metadata(CACERTS, mesh.ROOT_NAMESPACE, "mesh-ca")
