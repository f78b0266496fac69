"""What DigitalOcean offers, pinned as data: the regions DOKS runs in, the regions with Spaces,
the droplet sizes a node pool may use and the Kubernetes minors DOKS creates clusters with. The
config refuses anything else before a resource is registered, so a typo (`fra9`, `s-4vcpu-8g`,
`1.99`) fails in preview, not half-way through `pulumi up`.

Where the lists come from (compiled 2026-12-01 without network access; none was read from the
live API, so treat them as a pinned snapshot to refresh, not as DigitalOcean's word):
- DOKS regions: the example response of `GET /v2/kubernetes/options` in DigitalOcean's public
  OpenAPI spec (github.com/digitalocean/openapi,
  specification/resources/kubernetes/responses/examples.yml: ams3 blr1 fra1 lon1 nyc1 nyc3
  sfo2 sfo3 sgp1 tor1), plus syd1 and atl1, where DOKS has run since they opened (the author's
  knowledge of DigitalOcean's regional availability matrix, not verified here). NYC2, AMS2 and
  SFO1 are left out: the DOKS docs say Kubernetes is not offered there; so is ric1 (a newer
  datacenter) until DOKS is confirmed there.
- Spaces regions: DigitalOcean's "Spaces Availability" page
  (docs.digitalocean.com/products/spaces/details/availability, generated 23 Mar 2026): the
  regions with Spaces Standard Storage.
- Droplet sizes: the sizes of the same OpenAPI example (s-, c-, g-, gd-, m-, m3-, m6-) and of a
  public `GET /v2/regions` response of November 2021
  (gist.github.com/coolaj86/dfa7505c6f0334450ce5fee6aa2d797f: the -amd/-intel, c2-, so- and
  so1_5- sizes), with the larger premium-AMD basic sizes from the author's knowledge; only
  sizes with at least 2 GB of memory, DOKS' smallest node.
- Kubernetes minors: DOKS offers the latest three upstream minors (plus one while it is being
  retired); in late 2026 that is 1.33-1.36 (1.36 was released upstream in April 2026). This is
  the author's reading of the support policy, not a listing. Istio 1.30 needs 1.32 or newer
  (`MIN_KUBERNETES_MINOR` in config.py).

Refresh with `doctl kubernetes options regions|sizes|versions` and the Spaces availability page:
a slug missing here is refused until it is added here. Pure: no Pulumi.
"""

from __future__ import annotations

import difflib

DOKS_REGIONS: tuple[str, ...] = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc1",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)

SPACES_REGIONS: tuple[str, ...] = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)

DOKS_KUBERNETES_MINORS: tuple[int, ...] = (33, 34, 35, 36)


def _sizes(prefix: str, shapes: str, suffixes: tuple[str, ...] = ("",)) -> tuple[str, ...]:
    return tuple(f"{prefix}-{shape}{suffix}" for shape in shapes.split() for suffix in suffixes)


_TYPES = ("", "-amd", "-intel")

DROPLET_SIZES: frozenset[str] = frozenset(
    # Basic (shared CPU); the -amd / -intel variants are the premium CPUs.
    _sizes("s", "1vcpu-2gb 2vcpu-2gb 2vcpu-4gb 4vcpu-8gb 8vcpu-16gb", _TYPES)
    + _sizes("s", "2vcpu-8gb 4vcpu-16gb 8vcpu-32gb", ("-amd",))
    + _sizes("s", "6vcpu-16gb 8vcpu-32gb 12vcpu-48gb 16vcpu-64gb 20vcpu-96gb 24vcpu-128gb")
    + _sizes("s", "32vcpu-192gb")
    # General purpose (dedicated CPU), and with local NVMe (gd-).
    + _sizes("g", "2vcpu-8gb 4vcpu-16gb 8vcpu-32gb 16vcpu-64gb 32vcpu-128gb 40vcpu-160gb")
    + _sizes("gd", "2vcpu-8gb 4vcpu-16gb 8vcpu-32gb 16vcpu-64gb 32vcpu-128gb 40vcpu-160gb")
    # CPU-optimized.
    + _sizes("c", "2 4 8 16 32 48")
    + _sizes("c2", "2vcpu-4gb 4vcpu-8gb 8vcpu-16gb 16vcpu-32gb 32vcpu-64gb 48vcpu-96gb")
    # Memory-optimized.
    + _sizes("m", "2vcpu-16gb 4vcpu-32gb 8vcpu-64gb 16vcpu-128gb 24vcpu-192gb 32vcpu-256gb")
    + _sizes("m3", "2vcpu-16gb 4vcpu-32gb 8vcpu-64gb 16vcpu-128gb 24vcpu-192gb 32vcpu-256gb")
    + _sizes("m6", "2vcpu-16gb 4vcpu-32gb 8vcpu-64gb 16vcpu-128gb 24vcpu-192gb 32vcpu-256gb")
    # Storage-optimized.
    + _sizes("so", "2vcpu-16gb 4vcpu-32gb 8vcpu-64gb 16vcpu-128gb 24vcpu-192gb 32vcpu-256gb")
    + _sizes("so1_5", "2vcpu-16gb 4vcpu-32gb 8vcpu-64gb 16vcpu-128gb 24vcpu-192gb 32vcpu-256gb")
)

SIZE_FAMILIES: tuple[str, ...] = ("s", "g", "gd", "c", "c2", "m", "m3", "m6", "so", "so1_5")


def suggestion(value: str, known: tuple[str, ...] | frozenset[str]) -> str:
    """` (did you mean 'fra1'?)` when `value` is close to a known slug, else ''."""
    close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
