"""Learning schemes, one module (or package) each (DESIGN.md, "Layers").

Each scheme module registers its rule with :mod:`asyncnet.rules` when imported.
"""
