"""Builds: RQ jobs that turn a pushed commit into a slug and a release."""
