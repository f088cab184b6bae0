"""paas: a self-hosted, git-push, Heroku-style platform."""

__version__ = "0.1.0"
