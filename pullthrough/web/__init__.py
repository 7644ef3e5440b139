"""HTTP: the app factory and its blueprints."""
