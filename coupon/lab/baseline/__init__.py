"""Compare a run with a baseline run, row by row, and fail a CI job on a regression."""
