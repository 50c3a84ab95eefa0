"""Scenario files: TOML -> validated objects, with errors that name the key.

A scenario says which network, which rule with which parameters, which data
stream, how long, which seed and what to report. Every key is checked
against the schema below: an unknown key or a wrong type is an error naming
the key and the file. See README.md ("Scenario files") for the format.
"""

from __future__ import annotations

import inspect
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .data import DataError, Stream, make_stream
from .network import Network, NetworkError, layered
from .rules import get_rule


class ScenarioError(ValueError):
    """A scenario file is malformed or describes something impossible."""


NUM = (int, float)
SCHEMA: dict[str, dict[str, Any]] = {
    "scenario": {"name": str, "description": str, "seed": int, "duration": NUM},
    "network": {"layers": list, "activation": str, "out_activation": str, "delay": NUM,
                "scale": NUM, "init": str, "speed": NUM, "nodes": list, "edges": list},
    "rule": None,  # free-form, checked against the rule's own parameters
    "data": {"kind": str, "hold": NUM, "patterns": int, "order": str, "input": list,
             "target": list, "period": NUM, "lag": NUM, "target_scale": NUM,
             "input_node": str, "output_node": str,
             # energy-based rules (ep, coupled): see asyncnet/nudge.py
             "batch": int, "settle": NUM, "leg": NUM, "release": NUM, "samples": int,
             "test_fraction": NUM},
    "loss": {"kind": str},
    "analysis": {"kind": str, "holds": list, "warmup": NUM, "tolerance": NUM, "betas": list},
    "output": {"log": str, "save_state": str, "progress": bool, "write_log": bool,
               "state_dir": str},  # state_dir: checkpoints of a gradep run
    "cluster": {"workers": int, "partition": str},
}
NODE_KEYS = {"name": str, "size": int, "activation": str, "role": str, "bias": list}
EDGE_KEYS = {"pre": str, "post": str, "delay": NUM, "length": NUM, "speed": NUM,
             "scale": NUM, "init": str, "weight": list}
ANALYSES = ("none", "accuracy", "exactness", "alignment", "settling", "tracking", "gradient",
            "training")


@dataclass
class Scenario:
    """A validated scenario: the description, not yet an execution."""

    path: str
    text: str
    name: str
    seed: int
    duration: float
    graph: nx.DiGraph
    rule_name: str
    rule_params: dict
    data: dict
    analysis: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    cluster: dict = field(default_factory=dict)
    description: str = ""

    def build_rule(self) -> Any:
        """A fresh rule object with this scenario's parameters."""
        return make_rule(self.rule_name, self.rule_params, self.path)

    def build_network(self) -> Network:
        """The validated network (weights drawn from the scenario seed)."""
        rule = self.build_rule()
        try:
            return Network.from_graph(self.graph, seed=self.seed,
                                      require_dag=getattr(rule, "requires_dag", False))
        except NetworkError as e:
            raise ScenarioError(f"{self.path}: [network] {e}") from None

    def build_stream(self, net: Network, hold: float | None = None) -> Stream:
        """The data stream, checked against the network's populations."""
        d = dict(self.data)
        kind = d.pop("kind", "constant")
        inp = d.pop("input_node", None) or _only(net.inputs(), "input", self.path)
        out = d.pop("output_node", None) or _only(net.outputs(), "output", self.path)
        for node in (inp, out):
            if node not in net.populations:
                raise ScenarioError(f"{self.path}: [data] unknown population {node!r}")
        if getattr(self.build_rule(), "nudged", False):
            return self._nudge_stream(net, kind, inp, out, d)
        if hold is not None:
            d["hold"] = hold
        try:
            return make_stream(kind, n_in=net.populations[inp].size,
                               n_out=net.populations[out].size, input_node=inp,
                               output_node=out, seed=self.seed, duration=self.duration, **d)
        except DataError as e:
            raise ScenarioError(f"{self.path}: [data] {e}") from None


    def _nudge_stream(self, net: Network, kind: str, inp: str, out: str, d: dict):
        """Batches and teacher schedule for an energy-based rule (asyncnet/nudge.py)."""
        from .nudge import NudgeStream, load_dataset
        sched = {k: d.pop(k) for k in ("batch", "settle", "leg", "release") if k in d}
        for k in ("hold", "order", "period", "lag", "target_scale"):
            if k in d:
                raise ScenarioError(f"{self.path}: [data] key {k!r} does not apply to rule "
                                    f"{self.rule_name!r} (use settle, leg, batch)")
        try:
            ds = load_dataset(kind, n_in=net.populations[inp].size,
                              n_out=net.populations[out].size, seed=self.seed, **d)
            return NudgeStream(kind, ds, inp, out, sched.get("batch", 1),
                               sched.get("settle", 50), sched.get("leg", 50),
                               2 if getattr(self.build_rule(), "symmetric", False) else 1,
                               self.seed, self.duration, sched.get("release", 0))
        except DataError as e:
            raise ScenarioError(f"{self.path}: [data] {e}") from None


def _only(names: list[str], role: str, path: str) -> str:
    if len(names) != 1:
        raise ScenarioError(f"{path}: [data] the network has {len(names)} {role} "
                            f"populations; name one with {role}_node")
    return names[0]


def make_rule(name: str, params: dict, path: str = "<scenario>") -> Any:
    """Instantiate a rule by name, refusing parameters it does not have."""
    try:
        factory = get_rule(name)
    except KeyError:
        from .rules import RULES
        raise ScenarioError(f"{path}: [rule] name: unknown rule {name!r} "
                            f"(known: {', '.join(sorted(RULES))})") from None
    sig = inspect.signature(factory)
    for k in params:
        if k not in sig.parameters or k in ("name", "requires_dag"):
            known = [p for p in sig.parameters if p not in ("name", "requires_dag")]
            raise ScenarioError(f"{path}: [rule] unknown key {k!r} for rule {name!r} "
                                f"(known: {', '.join(known)})")
    try:
        return factory(**params)
    except (TypeError, ValueError) as e:
        raise ScenarioError(f"{path}: [rule] {e}") from None


def _check_table(tbl: Any, schema: dict, where: str, path: str) -> None:
    if not isinstance(tbl, dict):
        raise ScenarioError(f"{path}: {where} must be a table")
    for k, v in tbl.items():
        if k not in schema:
            raise ScenarioError(f"{path}: {where} unknown key {k!r} "
                                f"(known: {', '.join(schema)})")
        want = schema[k]
        ok = isinstance(v, want) and not (isinstance(v, bool) and want in (int, NUM))
        if want is bool:
            ok = isinstance(v, bool)
        if not ok:
            tname = want.__name__ if isinstance(want, type) else "number"
            raise ScenarioError(f"{path}: {where} key {k!r} must be a {tname}, "
                                f"got {type(v).__name__} {v!r}")


def load(path: str | os.PathLike, text: str | None = None) -> Scenario:
    """Read and validate a scenario file (or its ``text``, e.g. from a log)."""
    path = os.fspath(path)
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ScenarioError(f"{path}: cannot read ({e.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML ({e})") from None
    for sec, val in doc.items():
        if sec not in SCHEMA:
            raise ScenarioError(f"{path}: unknown section [{sec}] (known: {', '.join(SCHEMA)})")
        if SCHEMA[sec] is not None:
            _check_table(val, SCHEMA[sec], f"[{sec}]", path)
    for sec in ("scenario", "network", "rule"):
        if sec not in doc:
            raise ScenarioError(f"{path}: missing section [{sec}]")
    sc = doc["scenario"]
    if "duration" not in sc:
        raise ScenarioError(f"{path}: [scenario] missing key 'duration'")
    if not sc["duration"] > 0:
        raise ScenarioError(f"{path}: [scenario] key 'duration' must be positive")
    rule = dict(doc["rule"])
    if not isinstance(rule.get("name"), str):
        raise ScenarioError(f"{path}: [rule] missing key 'name' (a string)")
    rule_name = rule.pop("name")
    analysis = dict(doc.get("analysis", {}))
    if analysis.get("kind", "none") not in ANALYSES:
        raise ScenarioError(f"{path}: [analysis] kind {analysis['kind']!r} unknown "
                            f"(known: {', '.join(ANALYSES)})")
    loss = doc.get("loss", {}).get("kind", "mse")
    if loss != "mse":
        raise ScenarioError(f"{path}: [loss] kind {loss!r} unknown (known: mse)")
    graph = _graph(doc["network"], path)
    out = Scenario(path, text, sc.get("name", os.path.splitext(os.path.basename(path))[0]),
                   sc.get("seed", 0), float(sc["duration"]), graph, rule_name, rule,
                   dict(doc.get("data", {})), analysis, dict(doc.get("output", {})),
                   dict(doc.get("cluster", {})), sc.get("description", ""))
    rule_obj = out.build_rule()  # parameters are checked now, not mid-run
    if getattr(rule_obj, "nudged", False) and analysis.get("kind", "training") not in (
            "training", "gradient", "none", "accuracy"):
        raise ScenarioError(f"{path}: [analysis] kind {analysis['kind']!r} does not apply to "
                            f"rule {rule_name!r} (use training, gradient or none)")
    return out


def _graph(net: dict, path: str) -> nx.DiGraph:
    if "layers" in net:
        if "nodes" in net or "edges" in net:
            raise ScenarioError(f"{path}: [network] give either 'layers' or 'nodes'/'edges'")
        sizes = net["layers"]
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
            raise ScenarioError(f"{path}: [network] key 'layers' must be a list of integers")
        kw = {k: net[k] for k in ("activation", "out_activation", "delay", "scale", "init")
              if k in net}
        try:
            g = layered(sizes, **kw)
        except NetworkError as e:
            raise ScenarioError(f"{path}: [network] {e}") from None
    else:
        if "nodes" not in net or "edges" not in net:
            raise ScenarioError(f"{path}: [network] needs 'layers', or 'nodes' and 'edges'")
        g = nx.DiGraph()
        for i, nd in enumerate(net["nodes"]):
            _check_table(nd, NODE_KEYS, f"[[network.nodes]] #{i + 1}", path)
            if "name" not in nd:
                raise ScenarioError(f"{path}: [[network.nodes]] #{i + 1} missing key 'name'")
            if nd["name"] in g:
                raise ScenarioError(f"{path}: [[network.nodes]] duplicate name {nd['name']!r}")
            attrs = {k: v for k, v in nd.items() if k != "name"}
            for k, v in (("activation", net.get("activation")),):
                if v is not None:
                    attrs.setdefault(k, v)
            g.add_node(nd["name"], **attrs)
        for i, ed in enumerate(net["edges"]):
            _check_table(ed, EDGE_KEYS, f"[[network.edges]] #{i + 1}", path)
            for k in ("pre", "post"):
                if k not in ed:
                    raise ScenarioError(f"{path}: [[network.edges]] #{i + 1} missing key {k!r}")
                if ed[k] not in g:
                    raise ScenarioError(f"{path}: [[network.edges]] #{i + 1} {k} "
                                        f"{ed[k]!r} is not a declared node")
            attrs = {k: v for k, v in ed.items() if k not in ("pre", "post")}
            if "delay" not in attrs and "length" not in attrs and "delay" in net:
                attrs["delay"] = net["delay"]
            g.add_edge(ed["pre"], ed["post"], **attrs)
    if "speed" in net:
        g.graph["speed"] = net["speed"]
    return g
