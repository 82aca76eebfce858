"""Reading the runs' logs: one run's metrics log (run_logs), the sweep manifests that name a
figure's runs (manifests), the runs of a sweep as one tidy pandas table with the status of
each run (collect), and the churn between retrains from the runs' saved predictions (churn)."""
