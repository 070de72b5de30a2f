"""The service: settings, app factory, DB/Redis plumbing, ORM models, domain services, CLI."""
