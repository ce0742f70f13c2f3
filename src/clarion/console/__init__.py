"""The console: server-rendered pages at /console on the same services as the API."""
