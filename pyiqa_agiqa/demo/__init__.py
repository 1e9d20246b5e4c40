"""The embedded demo: generated AGIQA-format data and a tiny IPCE training run."""
