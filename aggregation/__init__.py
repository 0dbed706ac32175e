"""Aggregation strategies and their math, shared by the combiner and the controller.

The combiner reduces its clients' updates with a ``ClientAggregator`` (fedavg.py streaming, or a robust
rule over the spooled updates); the controller reduces the combiners' results with FedAvg and applies a
``ServerOptimizer`` step (fedavgm.py, fedadam.py, ...). One module per strategy, its paper in its
docstring; this package imports nothing of the combiner or the controller.
"""
