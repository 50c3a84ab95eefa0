"""asyncnet: asynchronous neurons and synapses exchanging timestamped messages."""

__version__ = "0.1.0"
