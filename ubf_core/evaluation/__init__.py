"""Judging synthetic HSIs: the metric suite over candidate sets, and its figures."""
