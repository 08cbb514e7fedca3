"""What both services stand on: procfs reading, CPU accounting, web serving, logging, units,
config-file loading, metric declarations and build information.

Neither service imports the other; both import from here.
"""
