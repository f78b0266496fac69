"""Which property changes make a provider *replace* a resource instead of updating it, for every
resource type the program registers, each entry naming where it was read.

`pulumi preview` learns this from each provider's Diff at run time; offline there is no provider,
so the review tool (`tools/review.py`) reads it from this table. Property paths are the wire
(camelCase) names the plan records (`nodePool.size`, `metadata.name`); a change at or under a
listed path forces a replacement. A type the table does not know is reported as such (and a test
fails), never silently treated as an update.

Sources, read with the project's repository tools (not from memory):
- DigitalOcean: `ForceNew: true` (and `customdiff.ForceNewIf*`) in the schemas of
  terraform-provider-digitalocean, tag v2.99.1 = commit 401992a1e493a0e3cfc833197820867991fc011f,
  which pulumi-digitalocean bridges unchanged (its resources.go adds no ForceNew). The stored
  pulumi-digitalocean snapshot (v4.76.0) pins upstream v2.96.0 (5ef5c0805c6c); 4.84.1, the
  version in requirements.txt, bridges a later tag that has the `isolated_workers`,
  `worker_subnet_uuid`, `subnet_uuid` and `gpu_partition_mode` arguments it exposes, all of
  which are ForceNew at v2.99.1. It also exposes arguments newer than v2.99.1
  (`nfs_csi_plugin`, a firewall rule's `action`), so it bridges a later tag than the one this
  table was read at; that tag is not stored here, so the table is not verified against it.
- Refused changes (`Refusal`, `NO_OVERLAP_ON_REPLACE`): the DigitalOcean API specification,
  digitalocean/openapi at 7c1300c4.
- Kubernetes: pulumi-kubernetes provider/pkg/provider/diff.go (`forceNew`,
  `metadataForceNewProperties`), provider.go (DiffConfig: `clusterIdentifier`,
  enableSecretMutable / enableConfigMapMutable default false) and helm_release.go
  (`forceNewFields := []string{".name", ".namespace"}`), snapshot v4.32.0-27
  (94977969d64112b04e19945818a7d5d5f38f631d; requirements.txt pins 4.34.2).
- random: terraform-provider-random internal/provider/resource_{id,password,string}.go
  (`RequiresReplace` plan modifiers), v3.9.0-4 (ad788e233bb42be5ecad3ba8f43de0d9d9dc7185).
- tls: terraform-provider-tls internal/provider/resource_*.go (`RequiresReplace`,
  `requireReplaceIfStateContainsPEMString`), v4.2.1-23 (d72d90e1b47b7cb5ce6863f528af3154963d61b7).
Pure: no Pulumi import.
"""

from __future__ import annotations

from dataclasses import dataclass

TF_DO = "terraform-provider-digitalocean@401992a1 (v2.99.1)"
TF_RANDOM = "terraform-provider-random@ad788e23 (v3.9.0)"
TF_TLS = "terraform-provider-tls@d72d90e1 (v4.2.1)"
PULUMI_K8S = "pulumi-kubernetes@94977969 (v4.32.0)"


@dataclass(frozen=True)
class Refusal:
    """A change the provider passes as an update but the cloud's API refuses: `pulumi up`
    fails part-way at this resource, after the changes before it are applied."""

    path: str
    old: object
    new: object
    why: str


@dataclass(frozen=True)
class TypeRule:
    """The replace-forcing properties of one resource type and where they were read.

    `condition` names the properties whose effect depends on the change itself, evaluated by
    the diff (`tools/review_diff.py`): `version-decrease` (DOKS replaces a cluster only when its
    version goes down), `cluster-identifier` (the Kubernetes provider), `mutable-secret` and
    `mutable-configmap` (replaced unless the provider enables in-place updates)."""

    paths: tuple[str, ...]
    source: str
    condition: str = ""
    conditional_paths: tuple[str, ...] = ()
    note: str = ""
    refused: tuple[Refusal, ...] = ()


def _do(
    file: str,
    *paths: str,
    condition: str = "",
    conditional_paths: tuple[str, ...] = (),
    note: str = "",
    refused: tuple[Refusal, ...] = (),
) -> TypeRule:
    found = "ForceNew" if paths or conditional_paths else "(no ForceNew field)"
    source = f"{TF_DO} digitalocean/{file} {found}"
    return TypeRule(tuple(paths), source, condition, conditional_paths, note, refused)


DO_API = "digitalocean/openapi@7c1300c4"
# The API refuses to turn an HA control plane off; the provider has no ForceNew or
# CustomizeDiff on `ha` and sends it as an update (resource_kubernetes_cluster.go).
HA_OFF = Refusal(
    "ha",
    True,
    False,
    "DigitalOcean cannot turn off a highly available control plane ("
    f"{DO_API} specification/resources/kubernetes/models/cluster_update.yml: `ha` 'cannot be "
    "disabled'); the provider sends it as an update, which the API refuses. Keep `ha: true`, "
    "or build a new cluster (docs/recovery.md)",
)


_PASSWORD = (
    "keepers",
    "length",
    "special",
    "upper",
    "lower",
    "numeric",
    "number",
    "minLower",
    "minUpper",
    "minNumeric",
    "minSpecial",
    "overrideSpecial",
)
_SUBJECT_AND_NAMES = ("subject", "dnsNames", "ipAddresses", "uris")
_CERT_USES = ("validityPeriodHours", "allowedUses", "isCaCertificate", "maxPathLength")

# Replacements the API refuses: Pulumi creates the replacement before it deletes the old
# resource, and the new one may not overlap the old one's range (type -> property, why).
NO_OVERLAP_ON_REPLACE: dict[str, tuple[str, str]] = {
    "digitalocean:index/vpc:Vpc": (
        "ipRange",
        "Pulumi creates the new VPC before it deletes the old one (the cluster still uses it), "
        f"and DigitalOcean refuses a range overlapping another VPC of the account ({DO_API} "
        "specification/resources/vpcs/models/vpc.yml: 'Network ranges cannot overlap'). "
        "Give the new VPC an unused range (cluster.vpcCidr)",
    ),
}

EXACT: dict[str, TypeRule] = {
    # --- DigitalOcean ---------------------------------------------------------------------
    "digitalocean:index/vpc:Vpc": _do("vpc/resource_vpc.go", "region", "ipRange"),
    "digitalocean:index/kubernetesCluster:KubernetesCluster": _do(
        "kubernetes/resource_kubernetes_cluster.go (+ kubernetes.go nodePoolSchema)",
        "region",
        "vpcUuid",
        "workerSubnetUuid",
        "clusterSubnet",
        "serviceSubnet",
        "isolatedWorkers",
        "nodePool.size",
        "nodePool.gpuPartitionMode",
        condition="version-decrease",
        conditional_paths=("version",),
        note="version: ForceNewIfChange when the new version is lower (CustomizeDiff)",
        refused=(HA_OFF,),
    ),
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool": _do(
        "kubernetes/kubernetes.go nodePoolSchema(true)", "clusterId", "size", "gpuPartitionMode"
    ),
    "digitalocean:index/loadBalancer:LoadBalancer": _do(
        "loadbalancer/resource_loadbalancer.go",
        "region",
        "vpcUuid",
        "subnetUuid",
        "ip",
        "type",
        "network",
        "networkStack",
    ),
    "digitalocean:index/domain:Domain": _do("domain/resource_domain.go", "name", "ipAddress"),
    "digitalocean:index/dnsRecord:DnsRecord": _do("domain/resource_record.go", "type", "domain"),
    "digitalocean:index/tag:Tag": _do("tag/resource_tag.go", "name"),
    "digitalocean:index/project:Project": _do("project/resource_project.go"),
    "digitalocean:index/projectResources:ProjectResources": _do(
        "project/resource_project_resources.go", "project"
    ),
    "digitalocean:index/firewall:Firewall": _do("firewall/resource_firewall.go"),
    "digitalocean:index/spacesBucket:SpacesBucket": _do(
        "spaces/resource_spaces_bucket.go",
        "region",
        note="name is not ForceNew and Update has no rename: a new name is never applied",
    ),
    "digitalocean:index/spacesKey:SpacesKey": _do("spaces/resource_spaces_key.go"),
    # --- random, tls ------------------------------------------------------------------------
    "random:index/randomId:RandomId": TypeRule(
        ("keepers", "byteLength", "prefix"),
        f"{TF_RANDOM} internal/provider/resource_id.go RequiresReplace",
    ),
    "random:index/randomPassword:RandomPassword": TypeRule(
        _PASSWORD, f"{TF_RANDOM} internal/provider/resource_password.go RequiresReplace"
    ),
    "random:index/randomString:RandomString": TypeRule(
        _PASSWORD, f"{TF_RANDOM} internal/provider/resource_string.go RequiresReplace"
    ),
    "tls:index/privateKey:PrivateKey": TypeRule(
        ("algorithm", "rsaBits", "ecdsaCurve"),
        f"{TF_TLS} internal/provider/resource_private_key.go RequiresReplace",
    ),
    "tls:index/certRequest:CertRequest": TypeRule(
        (*_SUBJECT_AND_NAMES, "privateKeyPem"),
        f"{TF_TLS} internal/provider/resource_cert_request.go RequiresReplace",
    ),
    "tls:index/locallySignedCert:LocallySignedCert": TypeRule(
        ("certRequestPem", "caPrivateKeyPem", "caCertPem", *_CERT_USES, "setSubjectKeyId"),
        f"{TF_TLS} internal/provider/resource_locally_signed_cert.go RequiresReplace",
        note="also replaced at apply once within earlyRenewalHours of expiry (common_cert.go)",
    ),
    "tls:index/selfSignedCert:SelfSignedCert": TypeRule(
        (
            "privateKeyPem",
            *_SUBJECT_AND_NAMES,
            *_CERT_USES,
            "setSubjectKeyId",
            "setAuthorityKeyId",
        ),
        f"{TF_TLS} internal/provider/resource_self_signed_cert.go RequiresReplace",
    ),
    # --- Kubernetes provider and Helm -------------------------------------------------------
    "pulumi:providers:kubernetes": TypeRule(
        (),
        f"{PULUMI_K8S} provider/pkg/provider/provider.go DiffConfig",
        condition="cluster-identifier",
        conditional_paths=("clusterIdentifier", "kubeconfig", "context", "cluster"),
        note="a changed clusterIdentifier replaces the provider, and with it every resource "
        "it manages; without one, a kubeconfig/context/cluster change does",
    ),
    "kubernetes:helm.sh/v3:Release": TypeRule(
        ("name", "namespace"), f"{PULUMI_K8S} provider/pkg/provider/helm_release.go forceNewFields"
    ),
    "kubernetes:helm.sh/v4:Chart": TypeRule(
        ("name", "namespace"),
        f"{PULUMI_K8S} provider/pkg/provider/diff.go metadataForceNewProperties",
        note="a component: a new release name or namespace renames (replaces) every object it "
        "renders; other changes update them (not expanded offline)",
    ),
}

# pulumi-kubernetes diff.go `forceNew`, by "group/version:Kind" (core is "core/v1"), on top of
# metadata.name and metadata.namespace, which every Kubernetes object has.
_SELECTOR = (
    "spec.selector",
    "spec.selector.matchExpressions",
    "spec.selector.matchLabels",
)
_CONTAINER = tuple(
    f"{prefix}.{field}"
    for prefix in ("spec.containers[*]", "spec.initContainers[*]")
    for field in (
        "args",
        "command",
        "env",
        "image",
        "imagePullPolicy",
        "lifecycle",
        "livenessProbe",
        "ports",
        "readinessProbe",
        "resources",
        "securityContext",
        "stdin",
        "stdinOnce",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "tty",
        "volumeDevices",
        "volumeMounts",
        "workingDir",
    )
)
_POD = (
    tuple(
        f"spec.{f}"
        for f in (
            "affinity automountServiceAccountToken dnsConfig dnsPolicy enableServiceLinks "
            "hostAliases hostIPC hostNetwork hostPID hostname imagePullSecrets nodeName "
            "nodeSelector overhead "
            "preemptionPolicy priority priorityClassName readinessGates restartPolicy "
            "runtimeClassName schedulerName securityContext serviceAccount serviceAccountName "
            "shareProcessNamespace subdomain terminationGracePeriodSeconds volumes"
        ).split()
    )
    + _CONTAINER
)
_STATEFUL = (
    "spec.podManagementPolicy",
    "spec.revisionHistoryLimit",
    "spec.serviceName",
    "spec.volumeClaimTemplates",
    *_SELECTOR,
)
KUBERNETES_KINDS: dict[str, tuple[str, ...]] = {
    **{f"apps/{v}:Deployment": _SELECTOR for v in ("v1", "v1beta2")},
    **{f"apps/{v}:DaemonSet": _SELECTOR for v in ("v1", "v1beta2")},
    **{f"apps/{v}:StatefulSet": _STATEFUL for v in ("v1", "v1beta1", "v1beta2")},
    **{
        f"batch/{v}:Job": (
            "spec.completions",
            "spec.parallelism",
            "spec.template",
            *_SELECTOR,
        )
        for v in ("v1", "v1beta1", "v2alpha1")
    },
    "core/v1:PersistentVolumeClaim": (
        "spec.accessModes",
        "spec.storageClassName",
        "spec.volumeName",
        *_SELECTOR,
    ),
    "core/v1:Pod": _POD,
    "core/v1:ResourceQuota": ("spec.scopes",),
    "core/v1:Service": ("spec.clusterIP",),
    "core/v1:Secret": ("type",),
    "policy/v1beta1:PodDisruptionBudget": ("spec",),
    **{
        f"rbac.authorization.k8s.io/{v}:{k}": ("roleRef",)
        for v in ("v1", "v1beta1", "v1alpha1")
        for k in ("RoleBinding", "ClusterRoleBinding")
    },
    "storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
}
_METADATA = ("metadata.name", "metadata.namespace")
_K8S_SOURCE = f"{PULUMI_K8S} provider/pkg/provider/diff.go forceNew"


def rule(type_: str) -> TypeRule | None:
    """The rule for `type_`, or None when the table does not know the type."""
    if type_ in EXACT:
        return EXACT[type_]
    if type_.startswith("service-mesh:"):
        return TypeRule((), "ComponentResource: has no provider diff; its children do")
    if type_.startswith("kubernetes:") and not type_.startswith("kubernetes:helm.sh/"):
        kind = type_.removeprefix("kubernetes:")
        if kind == "core/v1:Secret":
            return TypeRule(
                (*_METADATA, "type"),
                _K8S_SOURCE,
                condition="mutable-secret",
                conditional_paths=("data", "stringData"),
                note="data/stringData replace the Secret unless the provider sets "
                "enableSecretMutable (default false) and the Secret is not immutable",
            )
        if kind == "core/v1:ConfigMap":
            return TypeRule(
                _METADATA,
                _K8S_SOURCE,
                condition="mutable-configmap",
                conditional_paths=("data", "binaryData"),
                note="data/binaryData replace the ConfigMap unless the provider sets "
                "enableConfigMapMutable (default false) and it is not immutable",
            )
        return TypeRule((*_METADATA, *KUBERNETES_KINDS.get(kind, ())), _K8S_SOURCE)
    return None


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("[", ".[").split(".") if p]


def covers(rule_path: str, changed: str) -> bool:
    """Whether a change at `changed` (`spec.containers[0].image`) falls under `rule_path`
    (`spec.containers[*].image`), or replaces it whole (a change of `spec` covers `spec.x`)."""
    a, b = _parts(rule_path), _parts(changed)
    for x, y in zip(a, b, strict=False):
        if x == "[*]" and y.startswith("["):
            continue
        if x != y:
            return False
    return True


def sources_table() -> list[tuple[str, str, str]]:
    """(type, replace-forcing properties, source) for the docs and the review's appendix."""
    rows = []
    for type_, r in sorted(EXACT.items()):
        props = ", ".join((*r.paths, *r.conditional_paths)) or "none"
        refused = "".join(f"; refused: {x.path} {x.old} -> {x.new}" for x in r.refused)
        rows.append((type_, props, r.source + (f"; {r.note}" if r.note else "") + refused))
    rows.append(("kubernetes:* (every object)", ", ".join(_METADATA), _K8S_SOURCE))
    return rows
