"""The lab's HTML report: one self-contained report.html per run, built from its report.json."""
