"""The sell-outs scenario: every strategy sold out under the same load, audited, reported."""
