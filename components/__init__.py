"""Components of the service-mesh platform: one module per concern (see DESIGN.md)."""
