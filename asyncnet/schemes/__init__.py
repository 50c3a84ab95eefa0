"""Learning schemes, one module or package each (DESIGN.md, "Layers")."""
