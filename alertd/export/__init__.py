"""Ways out to the cluster's tools: Alertmanager's v2 API (alertmanager.py) and a Prometheus
/metrics endpoint (metrics.py)."""
