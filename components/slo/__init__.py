"""Layer 6: service level objectives as multi-window multi-burn-rate Prometheus rules."""
