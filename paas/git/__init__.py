"""Git over HTTP: dulwich's smart-HTTP server behind token auth, deploying on push."""
