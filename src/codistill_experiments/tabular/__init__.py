"""The tabular workloads: criteo.py (Criteo's click prediction, and its generated mini stand-in)."""
