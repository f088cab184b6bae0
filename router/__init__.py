"""The HTTP router: `<app>.<domain>` to the app's web dynos, `<domain>` to the platform."""
