"""Layer 1: the DOKS cluster, its VPC and node pools, and the Kubernetes provider."""
