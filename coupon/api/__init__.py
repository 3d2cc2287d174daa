"""The HTTP service: routes, JSON errors, the OpenAPI document, the /metrics scrape."""
