"""Layer 2: the way in — Pulumi-owned load balancer, DNS, TLS (cert-manager), the ingress
gateway's Service and the public Gateway, and the ingress rate limit."""
