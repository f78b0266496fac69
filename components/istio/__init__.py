"""Layer 3: the Istio control plane (base, istiod under a revision, gateways) from the official
charts."""
