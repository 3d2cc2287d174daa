"""The capacity scenario: open-loop steps per strategy until the latency objective breaks, and the scaling fit."""
