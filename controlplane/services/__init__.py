"""Domain services: the logic behind the API routes and the CLI."""
