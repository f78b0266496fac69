"""Traffic management from the service graph: Gateway-bound exposure, versions and ordered HTTP
routes, resilience (timeouts, retries, outlier detection, connection pools, load balancing),
mirrors and faults, scoped Sidecars, and SLO-driven canaries with Flagger."""
