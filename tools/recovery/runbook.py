"""The recovery runbook's commands, in order, for a plan (`tools.recover plan` prints them):
every flag checked against the Pulumi, pulumi-kubernetes and doctl sources named below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tools.recovery.root_ca import state_root_fingerprint
from tools.recovery.state import (
    PROJECT_RESOURCES,
    REGIONAL_TYPES,
    SPACES_BUCKET,
    cluster_of,
    declared,
)

# What state-backup.yml uploads (its upload-artifact steps; tests/test_recovery.py keeps these
# equal to the workflow): one artifact per stack, run and attempt (`...-unverified` when the
# check refused the export), holding the age-encrypted gzip tar of export.json, config.json and
# Pulumi.<stack>.yaml.
ARTIFACT = "state-backup-{stack}-<run-id>-<attempt>"
ENCRYPTED = "backup-{stack}.tgz.age"

# Listings that show what the account holds, per DigitalOcean type (doctl, checked against
# digitalocean/doctl commands/*.go): the reconcile step compares the preview's creates with them.
DOCTL_LISTINGS: dict[str, str] = {
    "digitalocean:index/vpc:Vpc": "doctl vpcs list",
    "digitalocean:index/kubernetesCluster:KubernetesCluster": "doctl kubernetes cluster list",
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool": (
        "doctl kubernetes cluster node-pool list <cluster-id>"
    ),
    "digitalocean:index/loadBalancer:LoadBalancer": "doctl compute load-balancer list",
    "digitalocean:index/domain:Domain": "doctl compute domain list",
    "digitalocean:index/dnsRecord:DnsRecord": "doctl compute domain records list <domain>",
    "digitalocean:index/firewall:Firewall": "doctl compute firewall list",
    "digitalocean:index/tag:Tag": "doctl compute tag list",
    "digitalocean:index/project:Project": "doctl projects list",
    PROJECT_RESOURCES: "doctl projects resources list <project-id>",
    "digitalocean:index/spacesKey:SpacesKey": "doctl spaces keys list",
    SPACES_BUCKET: (
        "aws s3 ls --endpoint-url https://<region>.digitaloceanspaces.com  # S3-compatible"
    ),
}

if TYPE_CHECKING:  # plan.py imports this module to fill in its commands
    from tools.recovery.plan import RecoveryPlan


def _secrets_provider_lines(doc: dict[str, Any], stack: str) -> list[str]:
    """How the export's secrets provider is opened by `stack import`, and the rewrite that
    makes the import independent of it. `stack import` builds the export's own secrets manager
    before anything else (pulumi pkg/resource/stack/deployment.go DeserializeDeploymentV3 ->
    initializeSecretsManager): a `service` one needs an access token for the Cloud URL in its
    state (pkg/secrets/service/manager.go NewServiceSecretsManagerFromState: "could not find
    access token for ..."), and only then is it re-targeted to the new stack
    (pkg/cmd/pulumi/stack/stack_import.go); a `passphrase` one needs the passphrase of its salt
    (pkg/secrets/passphrase/manager.go, state `{"salt": ...}`) and is kept. A `--show-secrets`
    export holds every secret as plaintext, so pointing `secrets_providers` at the new stack's
    passphrase salt needs neither."""
    provider = doc["deployment"].get("secrets_providers")
    provider = provider if isinstance(provider, dict) else {}
    state = provider.get("state") if isinstance(provider.get("state"), dict) else {}
    kind = provider.get("type") or "none"
    url = state.get("url")
    if kind == "service":
        why = (
            f"the export's secrets provider is the Pulumi Cloud service at "
            f"{url or 'https://api.pulumi.com'}: `stack import` needs an access token for "
            "that URL (even into another backend), then re-targets it to the new stack"
        )
    elif kind == "passphrase":
        why = (
            "the export's secrets provider is a passphrase: `stack import` opens it with "
            "PULUMI_CONFIG_PASSPHRASE, which must then be the OLD (escrowed) passphrase"
        )
    else:
        why = f"the export's secrets provider is {kind!r}"
    salt = f"$(sed -n 's/^encryptionsalt: //p' Pulumi.{stack}.yaml)"
    return [
        f"#    {why}. The export's secrets are plaintext (--show-secrets), so pointing it at "
        "the new stack's passphrase salt needs neither:",
        f'jq --arg salt "{salt}" \'.deployment.secrets_providers = '
        '{type: "passphrase", state: {salt: $salt}}\' "$d/export.json" > "$d/import.json"',
    ]


def commands(
    doc: dict[str, Any],
    stack: str,
    lost: str,
    region: str | None,
    plan: RecoveryPlan,
    program: Any,
    dependents: dict[str, set[str]],
    gone: set[str],
    by_urn: dict[str, dict[str, Any]],
) -> list[str]:
    """The runbook's commands. Every flag was checked against the Pulumi CLI's source
    (pulumi/pulumi at 1b5949891b, v3.259.0 + 14, the newest snapshot available here; the
    project pins 3.272.0): `stack init` = `stack new` with `--secrets-provider`
    (pkg/cmd/pulumi/stack/stack_new.go); `stack import --file` (stack_import.go); `stack
    change-secrets-provider <provider>`, re-encrypting config and state
    (stack_change_secrets_provider.go); `config set --path`, `config set --secret KEY` reading the
    value from stdin when it is not a terminal, and `config --show-secrets --json` writing
    `{key: {value, objectValue, secret}}` (pkg/cmd/pulumi/config/config.go, configValueJSON);
    `state delete --target-dependents --force --yes`, several URNs ordered
    dependents first (pkg/cmd/pulumi/state/state_delete.go); `state unprotect --yes`
    (state_unprotect.go); `refresh --run-program --yes --clear-pending-creates
    --import-pending-creates` (pkg/cmd/pulumi/operations/refresh.go); `import <type> <name> <id>
    --parent name=urn --generate-code=false --yes`, protecting by default (operations/import.go).
    `gh run download <run-id> -n <name> -D <dir>` extracts a single artifact into the directory
    (cli.github.com manual); `age -d -i -o`, `age -e -R` (age(1))."""
    s = f"-s {stack}"
    root_arg = (
        "" if state_root_fingerprint(doc) is not None else " --root-cert <escrowed root-cert.pem>"
    )
    cmds = [
        "# 0. Only if the state backend itself was lost: restore the latest backup "
        "(state-backup.yml) into a private temporary directory, never into the repository",
        'umask 077 && d="$(mktemp -d)"',
        "gh run list --workflow state-backup.yml --limit 10"
        "  # pick <run-id>: a failed run may hold the newest copy (-unverified)",
        f'gh run download <run-id> -n {ARTIFACT.format(stack=stack)} -D "$d"'
        "  # an -unverified one only after reading its findings",
        f'age -d -i key.txt -o "$d/backup.tgz" "$d/{ENCRYPTED.format(stack=stack)}"'
        "  # key.txt: an escrowed age identity",
        f'tar -xzf "$d/backup.tgz" -C "$d"  # export.json, config.json and Pulumi.{stack}.yaml '
        "(a reference copy: never copy it over the tracked file)",
        f'python -m tools.recover check "$d/export.json" --stack {stack} '
        f'--config "$d/config.json"{root_arg}',
        "pulumi login <backend>  # the same backend, or a new one (Pulumi Cloud or DIY)",
        f"pulumi stack init {stack} --secrets-provider passphrase  # the SAME stack name",
        *_secrets_provider_lines(doc, stack),
        "jq -r 'to_entries[] | select(.value.secret) | .key' \"$d/config.json\" | "
        'while read -r key; do jq -j --arg k "$key" \'.[$k].value\' "$d/config.json" | '
        f'pulumi config set --secret "$key" {s}; done'
        "  # the secret config, each value on stdin (never in `ps`); the plain config is the "
        "tracked file",
        f'pulumi stack import --file "$d/import.json" {s}',
        f"pulumi stack change-secrets-provider default {s}  # only to go back to the Pulumi "
        "Cloud secrets service",
        "# 1. Forget what died with the cluster. Run this and every later step from an "
        "address in service-mesh:cluster.controlPlaneAllowList: the cluster API admits no "
        "other, and from elsewhere a live cluster looks unreachable, which the refresh would "
        "take for a lost one",
        "read -rs DIGITALOCEAN_ACCESS_TOKEN && export DIGITALOCEAN_ACCESS_TOKEN"
        "  # for doctl (the kubeconfig's exec credential) and the provider",
    ]
    cluster = cluster_of(doc["deployment"]["resources"])
    if cluster is not None and cluster.get("id"):
        cmds.append(
            f"doctl kubernetes cluster get {cluster['id']}  # confirm the loss first: "
            + ("its region is down" if lost == "region" else "the cluster is gone (404)")
        )
    # Before the refresh: a Helm release's Read on a dead cluster can fail the whole refresh
    # (pulumi-kubernetes provider/pkg/provider/helm_release.go Read returns the release
    # lookup's error whenever Configure did not already flag the cluster unreachable: only then
    # does provider.go's Read honour deleteUnreachable first), and a release's Delete ignores
    # deleteUnreachable (pulumi-kubernetes#2675; pull request #4593 still open).
    # Dependents first, since `state delete` refuses a resource something depends on
    # (ResourceHasDependenciesError, pulumi pkg/resource/edit/operations.go); in state the
    # objects on the cluster depend on the releases too, so each command takes its dependents
    # along (`--target-dependents`, pkg/cmd/pulumi/state/state_delete.go), which is safe only
    # when every one of them died with the cluster.
    removed: set[str] = set()
    for urn in plan.helm_releases:
        taken = dependents.get(urn, set()) - removed
        survivors = sorted(taken - gone)
        if survivors:
            cmds.append(
                f"# not printed: `state delete {urn}` would also drop {', '.join(survivors)}, "
                "which survive the loss; remove that dependency first"
            )
            continue
        removed |= taken | {urn}
        # Each flag only where it is needed: --target-dependents for a release something
        # still depends on, --force for a protected release or dependent.
        along = f", with the {len(taken)} object(s) on the dead cluster that depend on it"
        flags = " --target-dependents" if taken else ""
        if any(by_urn.get(u, {}).get("protect") for u in taken | {urn}):
            flags += " --force"
        cmds.append(
            f"pulumi state delete '{urn}'{flags} --yes {s}"
            f"  # helm.v3.Release{along if taken else ''}"
        )
    cmds.append(
        f"PULUMI_K8S_DELETE_UNREACHABLE=true pulumi refresh --run-program --yes {s}"
        "  # drops the dead cluster's objects (refresh does not consult protect); set on this "
        "line only, so `up` fails on an unreachable cluster instead of forgetting it"
    )
    step = 2
    if lost == "region":
        vpc = next(
            (r for r in doc["deployment"]["resources"] if r.get("type") == REGIONAL_TYPES[0]), None
        )
        current = ((vpc or {}).get("inputs") or {}).get("ipRange")
        cmds += [
            f"# {step}. Move the stack to the new region (the old one's resources still exist "
            "for the DigitalOcean API)",
            f"pulumi config set --path service-mesh:cluster.region {region or '<new region>'} {s}",
            "doctl vpcs list  # VPC ranges cannot overlap within an account"
            + (f"; {current} is still the old VPC's" if current else ""),
            f"pulumi config set --path service-mesh:cluster.vpcCidr <unused range> {s}",
        ]
        cmds += [
            f"pulumi state unprotect '{urn}' --yes {s}  # protected; `up` replaces it in the "
            "new region, and sets protect again"
            for urn in plan.unprotect
        ]
        step += 1
    cmds += [
        f"# {step}. Only after a restore (step 0): reconcile. A DigitalOcean resource the "
        "preview creates that a listing already shows was created or replaced after the "
        "backup: adopt it instead of creating a second one",
        f"pulumi preview --diff {s}",
    ]
    types = sorted({r.type for r in declared(program).values()} & set(DOCTL_LISTINGS))
    cmds += [DOCTL_LISTINGS[t] for t in types]
    program_by_urn = {r.urn: r for r in program.resources}
    for urn in plan.reconcile:
        r = program_by_urn[urn]
        parent = f" --parent 'parent={r.parent}'" if r.parent else ""
        cmds.append(
            f"pulumi import '{r.type}' '{r.name}' <id>{parent} --generate-code=false --yes {s}"
            "  # not in the export: created after the backup?"
        )
    cmds.append(
        "pulumi import '<type>' '<name>' <id> --parent 'parent=<parent URN>' "
        f"--generate-code=false --yes {s}  # any other such create (type, name, parent: its URN)"
    )
    step += 1
    cmds += [
        f"# {step}. Rebuild, reviewing the plan first",
        f"pulumi preview --diff {s}",
        f"pulumi up {s}",
        "kubectl get pods -A  # then restart workloads you deploy yourself (docs/recovery.md)",
    ]
    return cmds


def render_plan(plan: RecoveryPlan) -> str:
    def block(title: str, urns: list[str]) -> list[str]:
        return [f"{title} ({len(urns)}):", *(f"  {u}" for u in urns)]

    lines = [f"Recovery of stack {plan.stack} after a lost {plan.lost}", "", "Commands, in order:"]
    lines += [f"  {c}" for c in plan.commands]
    lines += ["", *block("Retained (same URN and identity)", plan.retained)]
    lines += block("Updated in place", plan.updated)
    lines += block("Recreated, in dependency order", plan.recreated)
    if plan.only_in_state:
        lines += block(
            "Only in state (the program no longer declares them: `up` deletes them)",
            plan.only_in_state,
        )
    lines += [
        "",
        f"Estimated recovery time: about {plan.minutes:.0f} minutes along the longest dependency "
        "chain (typical create times in tools/recovery/plan.py CREATE_MINUTES; estimates, not "
        "measurements)",
    ]
    lines += ["", *plan.notes]
    return "\n".join(lines)
