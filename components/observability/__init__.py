"""Layer 5: metrics, alerting, dashboards, tracing, logs and Kiali in `monitoring`, and the
Istio scraping monitors and Telemetry."""
