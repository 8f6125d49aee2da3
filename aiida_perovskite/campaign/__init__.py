"""Campaigns of the concurrent-learning loop: the campaign file, the exploration schedule, queries and reports."""
