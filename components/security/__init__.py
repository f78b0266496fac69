"""Layer 4: zero trust — mTLS, authorization from the service graph, network policies, egress
control and the plug-in mesh CA."""
