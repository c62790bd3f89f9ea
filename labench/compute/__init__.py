"""The work: the evaluation set, a run's set-up, the attribution and scoring jobs."""
