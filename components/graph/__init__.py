"""The declared service graph: mesh namespaces, services, callers and external hosts — the
domain model every layer reads — with its checks, its indexes and the platform namespaces."""
