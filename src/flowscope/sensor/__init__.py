"""The live sensor: packets → flows → verdicts, rule alerts and risk → sinks.

:mod:`.pipeline` handles one batch of finished flows, :mod:`.risk` grades each flow,
:mod:`.runner` drives it from a live interface or a capture file (threads, bounded
queue, shutdown) and :mod:`.status` formats the loss accounting. docs/sensor.md
describes the whole.
"""
