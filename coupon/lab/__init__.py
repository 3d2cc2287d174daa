"""The comparison lab: every strategy under the same locust load, audited, measured, reported."""
