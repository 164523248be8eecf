"""Model monitoring: baselines from training data, data quality and drift on captured traffic."""
