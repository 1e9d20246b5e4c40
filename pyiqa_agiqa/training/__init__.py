"""Training runs of the plugin: loop, resume states, processes, option checks, n splits."""
