"""The follower report: one self-contained HTML file built from the warehouse alone (`pgy-pipeline report`)."""
