"""`pytest checks` entry point: loads runner-health's plugin and the remediations. Nothing else lives here."""

from remediations import MODULES

pytest_plugins = ["runner_health.plugin", *MODULES]
