"""Plug-in mesh CA: istiod signs workload certificates with a per-cluster intermediate CA whose
root lives in stack config (encrypted), not in the cluster.

Why: a rebuilt cluster, or a DR stack made with `pulumi stack init --copy-config-from`, gets a new
intermediate under the same root, so workload identities and cross-cluster trust survive. The
`cacerts` Secret must exist before istiod starts, else istiod mints a self-signed root that no
other cluster trusts; hence `MeshCertificateAuthority.secret` goes into istiod's `depends_on`.
Outside production, a missing root is generated and kept in the Pulumi state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components import mesh

if TYPE_CHECKING:
    from components.config import PlatformConfig

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
    return {"name": CACERTS, "namespace": mesh.ROOT_NAMESPACE, "labels": mesh.labels("mesh-ca")}


class MeshCertificateAuthority(pulumi.ComponentResource):
    """Intermediate CA issued under the configured root, written to `istio-system/cacerts`."""

    secret: k8s.core.v1.Secret

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        *,
        depends_on: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("service-mesh:security:MeshCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_cfg = cfg.security.mesh_ca

        root_cert, root_key = self._root(name, cfg, child)

        key = tls.PrivateKey(f"{name}-intermediate-key", algorithm="RSA", rsa_bits=4096,
                             opts=child)
        request = tls.CertRequest(
            f"{name}-intermediate-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(**intermediate_subject(cfg.name)),
            dns_names=[f"istiod.{mesh.ROOT_NAMESPACE}.svc"],
            opts=child,
        )
        self.intermediate = tls.LocallySignedCert(
            f"{name}-intermediate-cert",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=root_cert,
            ca_private_key_pem=root_key,
            is_ca_certificate=True,
            max_path_length=0,
            set_subject_key_id=True,
            validity_period_hours=ca_cfg.intermediate_validity_hours,
            early_renewal_hours=ca_cfg.early_renewal_hours,
            allowed_uses=INTERMEDIATE_USES,
            opts=child,
        )

        data = pulumi.Output.all(
            self.intermediate.cert_pem, key.private_key_pem, root_cert
        ).apply(lambda v: cacerts_data(v[0], v[1], v[2], ca_cfg.additional_trusted_roots))
        self.secret = k8s.core.v1.Secret(
            f"{name}-cacerts",
            metadata=cacerts_metadata(),
            type="Opaque",
            # Each value a Pulumi secret, so state and previews show `[secret]`.
            string_data={k: pulumi.Output.secret(data[k]) for k in CACERTS_KEYS},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=list(depends_on), protect=ca_cfg.protect
            ),
        )
        self.register_outputs({"secret": self.secret.id, "intermediate": self.intermediate.id})

    def _root(
        self, name: str, cfg: PlatformConfig, child: pulumi.ResourceOptions
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The configured root (as secrets), or outside production a root kept in state."""
        if cfg.mesh_ca_root_cert is not None and cfg.mesh_ca_root_key is not None:
            return (
                pulumi.Output.secret(cfg.mesh_ca_root_cert.get_secret_value()),
                pulumi.Output.secret(cfg.mesh_ca_root_key.get_secret_value()),
            )
        if cfg.environment == "production":  # config validation refuses this first
            raise ValueError("a configured mesh root CA is required in production")
        key = tls.PrivateKey(f"{name}-state-root-key", algorithm="RSA", rsa_bits=4096, opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-state-root-cert",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                organization=ORGANIZATION, common_name=f"{cfg.name} mesh root CA (state)"
            ),
            is_ca_certificate=True,
            validity_period_hours=87600,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        return cert.cert_pem, pulumi.Output.secret(key.private_key_pem)
