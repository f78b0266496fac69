"""Layer 3: the Istio control plane from the official charts (base, one istiod per revision,
gateways), the revision tags it authors, and the preconditions of a canary upgrade."""
