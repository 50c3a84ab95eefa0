"""Pure-numpy physics shared by the energy-based rules (EP, coupled learning).

Nothing here knows about time, messages or the engine: these are the
energies, their gradients, the textbook relaxations and the independent
references (direct linear solves, implicit differentiation) that tests and
tools compare the message-passing rules against.

- :mod:`asyncnet.physics.hopfield`: the Hopfield-like energy of equilibrium
  propagation (Scellier & Bengio 2017) on any symmetric coupling graph.
- :mod:`asyncnet.physics.resistor`: linear resistor (flow) networks, coupled
  learning (Stern et al. 2021) and EP on them, with voltage- or current-source
  inputs.
"""
