"""The asynchronous pipeline: Redis Streams of accepted requests, the worker, reconcile."""
