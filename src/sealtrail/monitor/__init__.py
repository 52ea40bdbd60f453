"""Monitoring: detection rules over the committed stream, alerts and their delivery."""
