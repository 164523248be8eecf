"""The HTTP adapters: FastAPI routers over the services (thin: parse, call a service, serialize)."""
