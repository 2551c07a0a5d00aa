"""stackyard: build, ship and run OpenStack as containers."""

__version__ = "0.1.0"
