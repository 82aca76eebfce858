"""Figures, tables, the claims check and the report, drawn from the runs' logs (paper/logs by default).

Commands (python -m figures.<name>): registry (draw ids), collect (status of every figure's runs),
report (paper/report.md and .html), regime (the regime check), run_table (a sweep's runs in
numbers), tuning (the frontier's tuning ranking), pack (logs into the committed form),
reproduce_all (every sweep, then pack).

Packages, each importing only those after it (pyproject.toml's contracts check it): the registry of
ids; drawing (each id's plot or table), claims (the records' claims checked against the logs) and
regime (the regime check's invariants); records (paper/figures/<id>.yaml: everything about one figure);
logs (reading run logs and sweep manifests); paths.
"""
