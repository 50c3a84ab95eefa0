"""The engine face of EP against the pure-numpy face, with learning on.

With phases long enough to settle, an engine window (free, [−β,] +β; updates
deferred to the end of the leg) must apply exactly the discrete EP update
that plain numpy computes from relaxed states (physics/hopfield.py), window
after window. (Symmetric EP with the hard sigmoid is left out: its −β phase
settles too slowly for a 100-step leg.)
"""

import numpy as np
import pytest

from asyncnet.scenario import load
from asyncnet.schemes.ep import hopfield as H
from asyncnet.schemes.ep import hopfield_of
from asyncnet.simulation import build_engine

SCENARIO = """
[scenario]
name = "ep_faces"
seed = 5
duration = {duration}

[network]
layers = [64, 12, 10]
activation = "{act}"
init = "uniform"
scale = 0.5

[rule]
name = "ep"
beta = 0.5
symmetric = {sym}
eta = 0.3
eps = 0.5
tol = 1e-13
apply = "deferred"

[data]
kind = "digits"
samples = 40
batch = 8
settle = 150
leg = 100

[output]
write_log = false
"""


@pytest.mark.parametrize("act,sym", [("sigmoid", True), ("sigmoid", False),
                                     ("hardsigmoid", False)])
def test_engine_training_equals_numpy_training(tmp_path, act, sym):
    windows = 4
    # + 3: the last leg is committed when the next input reaches l1 (t + 2)
    hold = 150 + (2 if sym else 1) * 100
    text = SCENARIO.format(duration=hold * windows + 3, act=act, sym=str(sym).lower())
    path = tmp_path / "ep_faces.toml"
    path.write_text(text)
    sc = load(str(path))
    eng, net, stream = build_engine(sc)
    face, sl = hopfield_of(net)
    eng.run(sc.duration)
    # the numpy face: same batches, relaxed phases, discrete symmetric EP update
    beta, eta = 0.5, 0.3
    S = np.zeros((8, face.n))
    for w in range(windows):
        rows = stream.rows(w)
        S[:, sl["l0"]] = stream.data.inputs[rows]
        y = stream.data.targets[rows]
        S = H.relax(face, S, eps=0.5, tol=1e-14, steps=5000)
        Sm = H.relax(face, S, eps=0.5, beta=-beta, y=y, tol=1e-14, steps=5000) if sym else S
        Sp = H.relax(face, Sm, eps=0.5, beta=beta, y=y, tol=1e-14, steps=5000)
        gWm, gbm = H.param_grad(face, Sm)
        gWp, gbp = H.param_grad(face, Sp)
        gain = 1 / (2 * beta) if sym else 1 / beta
        face.W = face.W - eta * gain * (gWp - gWm)
        face.b = face.b - eta * gain * (gbp - gbm)
        S = Sp
    for (u, v), pr in net.projections.items():
        W = eng.agents[pr.name].model.W
        assert np.abs(W - face.W[sl[v], sl[u]]).max() < 1e-9
        assert np.abs(W - pr.weight).max() > 1e-3  # it did learn
    for nm in ("l1", "l2"):
        assert np.abs(eng.agents[nm].model.b - face.b[sl[nm]]).max() < 1e-9
