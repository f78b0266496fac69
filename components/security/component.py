"""The zero-trust layer's components: `MeshSecurity` registers every object `objects.py` builds
(mTLS, authorization, network policies, egress control, the ingress rate limit), each after its
namespace and, for Istio CRs, after the CRDs and istiod (`crds_ready`) so that neither a missing
kind nor the validation webhook can fail it; `MeshCertificateAuthority` issues the plug-in CA's
intermediate (see `mesh_ca.py` for why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from components.base import mesh
from components.base.manifests import resource_name
from components.base.resources import register
from components.graph.checks import ServiceGraph
from components.security.config import MeshCaConfig, SecurityConfig
from components.security.mesh_ca import (
    CACERTS_KEYS,
    INTERMEDIATE_USES,
    ORGANIZATION,
    cacerts_data,
    cacerts_metadata,
    intermediate_subject,
)
from components.security.objects import security_objects


@dataclass(frozen=True)
class MeshSecurityArgs:
    graph: ServiceGraph
    security: SecurityConfig
    namespaces: Mapping[str, pulumi.Resource]  # every namespace an object lands in
    crds_ready: Sequence[pulumi.Resource]  # Istio CRDs and istiod's webhook


@dataclass(frozen=True)
class MeshCertificateAuthorityArgs:
    stack_name: str  # named in the intermediate's (and a state root's) subject
    ca: MeshCaConfig
    # The mesh root from stack config (Pulumi secrets), or None where a state root is allowed.
    root_cert: pulumi.Input[str] | None
    root_key: pulumi.Input[str] | None
    namespace: pulumi.Resource  # istio-system, where `cacerts` lives


class MeshSecurity(pulumi.ComponentResource):
    """Registers `security_objects`, one Pulumi resource per object, named `<ns>-<name>`."""

    def __init__(
        self, name: str, args: MeshSecurityArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:security:MeshSecurity", name, None, opts)
        self.resources: list[pulumi.CustomResource] = []
        for obj in security_objects(args.graph, args.security):
            namespace = args.namespaces[obj["metadata"]["namespace"]]
            self.resources.append(self._register(obj, namespace, args.crds_ready))
        self.register_outputs({"objects": len(self.resources)})

    def _register(
        self, obj: dict[str, Any], namespace: pulumi.Resource, crds_ready: Sequence[pulumi.Resource]
    ) -> pulumi.CustomResource:
        # Istio objects also wait for the CRDs and istiod's validating webhook.
        istio = obj["apiVersion"].split("/")[0].endswith("istio.io")
        depends_on = [namespace, *crds_ready] if istio else [namespace]
        return register(
            resource_name(obj), obj, pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        )


class MeshCertificateAuthority(pulumi.ComponentResource):
    """Intermediate CA issued under the configured root, written to `istio-system/cacerts`."""

    secret: k8s.core.v1.Secret

    def __init__(
        self,
        name: str,
        args: MeshCertificateAuthorityArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("service-mesh:security:MeshCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_cfg = args.ca

        root_cert, root_key = self._root(name, args, child)

        key = tls.PrivateKey(f"{name}-intermediate-key", algorithm="RSA", rsa_bits=4096, opts=child)
        request = tls.CertRequest(
            f"{name}-intermediate-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(**intermediate_subject(args.stack_name)),
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

        data = pulumi.Output.all(self.intermediate.cert_pem, key.private_key_pem, root_cert).apply(
            lambda v: cacerts_data(v[0], v[1], v[2], ca_cfg.additional_trusted_roots)
        )
        self.secret = k8s.core.v1.Secret(
            f"{name}-cacerts",
            metadata=cacerts_metadata(),
            type="Opaque",
            # Each value a Pulumi secret, so state and previews show `[secret]`.
            string_data={k: pulumi.Output.secret(data[k]) for k in CACERTS_KEYS},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.namespace], protect=ca_cfg.protect
            ),
        )
        self.register_outputs({"secret": self.secret.id, "intermediate": self.intermediate.id})

    def _root(
        self, name: str, args: MeshCertificateAuthorityArgs, child: pulumi.ResourceOptions
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The configured root (as secrets), or, where the tier allows it (config refuses a
        missing root in production), a root kept in state."""
        if args.root_cert is not None and args.root_key is not None:
            return pulumi.Output.secret(args.root_cert), pulumi.Output.secret(args.root_key)
        key = tls.PrivateKey(f"{name}-state-root-key", algorithm="RSA", rsa_bits=4096, opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-state-root-cert",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                organization=ORGANIZATION, common_name=f"{args.stack_name} mesh root CA (state)"
            ),
            is_ca_certificate=True,
            validity_period_hours=87600,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        return cert.cert_pem, pulumi.Output.secret(key.private_key_pem)
