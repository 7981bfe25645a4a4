"""runner-health: health checks and self-healing for a self-hosted GitHub Actions runner VM."""

__version__ = "0.5.0"
