"""Compliance: retention, evidence bundles, reports and SIEM exports."""
