"""The `paas` command-line client; it talks to the platform only through the REST API."""
