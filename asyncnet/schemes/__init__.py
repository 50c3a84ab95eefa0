"""Learning schemes: one module (or package) per scheme, each only local physics.

Schemes are found by name through :mod:`asyncnet.registry` (built-in ones
and any installed package's ``asyncnet.schemes`` entry points); nothing
here imports them.
"""
