"""Shared base: config model and errors, environment profiles, the Kubernetes object helper
(labels, naming, Secret, register), chart pins, shared mesh names and workload sizing."""
