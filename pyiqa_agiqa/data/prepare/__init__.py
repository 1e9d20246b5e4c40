"""Converters from official dataset releases to the package meta-info format."""
