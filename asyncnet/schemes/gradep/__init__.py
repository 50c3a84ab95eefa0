"""GradEP / FlowEqProp (SCHEMES.md §5): flow matching trained by gradient EP.

Modules: :mod:`.physics` (energy, local rules, Adam, validation), :mod:`.face`
(the plain-numpy face), :mod:`.data` (the teacher's OT-paired batches),
:mod:`.agents` (the engine's rule), :mod:`.train` (runs, checkpoints, shards),
:mod:`.runner` (the training run's processes), :mod:`.scheme` (the registered rule,
a scenario's run), :mod:`.sampling` (Euler sampling, grids).
"""
