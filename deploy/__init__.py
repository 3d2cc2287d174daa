"""What stands around the service in production: the nginx edge, Prometheus and Grafana."""
