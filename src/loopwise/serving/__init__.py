"""Serving: endpoints with production and shadow variants, their configurations, deployment."""
