"""Which Kubernetes version the cluster is given, so that a version changes only when someone
decides it. Pure: no Pulumi.

- Unpinned (the default, with `autoUpgrade`): a new cluster starts at the newest patch of the
  configured minor; afterwards the program never moves it (the component ignores `version`
  changes), so DOKS' patch upgrades happen in the maintenance window only, and a patch release
  never upgrades the cluster on whatever `up` runs next, nor does the program fight the version
  DOKS has moved to.
- Pinned (`kubernetesVersion`, with `autoUpgrade: false`): a deliberate move, reviewed in the
  preview, typically a minor upgrade; unpin once it is done.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.base.model import ConfigError


def choose_version(prefix: str, pin: str | None, latest: str, offered: Sequence[str]) -> str:
    """The version to send: the pin if DOKS offers it, else the newest patch of the minor.
    `latest` and `offered` come from DigitalOcean (`getKubernetesVersions` for the prefix)."""
    shown = ", ".join(offered) or "none"
    if pin is not None:
        if pin not in offered:
            raise ConfigError.one(
                "cluster.kubernetesVersion",
                pin,
                f"is not a version DigitalOcean offers for {prefix.rstrip('.')} (offered: "
                f"{shown}); `doctl kubernetes options versions` lists them",
            )
        return pin
    if not latest:
        raise ConfigError.one(
            "cluster.kubernetesVersionPrefix",
            prefix.rstrip("."),
            "is not a minor DigitalOcean offers any more; pick one that "
            "`doctl kubernetes options versions` lists",
        )
    return latest


def ignores_version_changes(auto_upgrade: bool, pin: str | None) -> bool:
    """Whether the cluster's `version` is DOKS' to move (patches in the window), not ours."""
    return auto_upgrade and pin is None
