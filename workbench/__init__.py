"""workbench: an annotation-to-model active learning workbench (command `wb`)."""

__version__ = "0.1.0"
