"""The benches `make bench` and `make bench-edge` run: direct calls, the hot path over HTTP, the edge."""
