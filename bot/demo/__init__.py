"""The demo: a bundled sample news site and a runner wiring it to the platform stand-ins."""
