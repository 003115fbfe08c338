"""Benchmarks of streamdrift against its floor and other ways of doing the same work.

``python benchmarks/run.py`` runs them all; see benchmarks/RESULTS.md.
"""
