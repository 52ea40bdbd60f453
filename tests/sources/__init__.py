"""Tests of the importable sources (core/sources/): one file per source."""
