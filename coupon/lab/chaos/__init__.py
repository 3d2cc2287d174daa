"""The chaos lab: each strategy under load while a fault is injected, then audited."""
