"""Dagster wiring: definitions, partitions, the sync job, schedule, sensor and the command line."""

import warnings

from dagster import BetaWarning

# The daily assets rely on `backfill_policy`, which Dagster 1.13 still labels beta; the warning
# would otherwise print once per asset on every command.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")
