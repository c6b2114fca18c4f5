"""pgy-pipeline: Xiaohongshu Pugongying KOL follower trends, from the Just One API into Postgres."""

__version__ = "0.1.0"
