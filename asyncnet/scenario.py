"""Scenario files: TOML -> validated objects, with errors that name the key.

A scenario says which network, which rule with which parameters, which data
stream, how long, which seed and what to report. Every key is checked
against the schema below: an unknown key or a wrong type is an error naming
the key and the file. See README.md ("Scenario files") for the format.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
import tomllib
from typing import Any

import networkx as nx

from . import scenario_toml, schema
from .data import DataError, LayerFeed, Stream, check_kind_keys, make_stream, natural_order
from .network import Network, NetworkError, layered
from .outputs import read_text
from .registry import SchemeError, get_scheme
from .scenario_toml import (  # the file's schema and its checks, named here as before
    EDGE_KEYS,
    FLAT,
    LIST_ITEMS,
    MAX_DURATION,
    NODE_KEYS,
    NUM,
    SCHEMA,
    ScenarioError,
    _check_items,
    _check_table,
)

__all__ = ["Scenario", "ScenarioError", "load", "make_rule", "SCHEMA", "NUM",
           "LIST_ITEMS", "FLAT", "MAX_DURATION", "NODE_KEYS", "EDGE_KEYS", "_check_items"]


class Scenario:
    """A validated scenario: the description of a run, not yet an execution.

    Build one from a file (:meth:`from_toml`) or in Python::

        g = asyncnet.layered([2, 4, 1])
        sc = asyncnet.Scenario(g, "diffusion", params={"eta": 0.05},
                               data={"kind": "xor", "hold": 8}, duration=4000)

    A scenario built in Python is written out as TOML (:meth:`to_toml`) and
    read back through the same validation as a file, so its event log embeds
    it like any other and ``replay``, ``stats`` and ``inspect`` rebuild it.

    Parameters
    ----------
    graph:
        The network: nodes are populations (``size``, ``activation``,
        ``role``, optional ``bias``), edges projections (``delay`` or
        ``length``/``speed``, optional ``weight``, ``scale``, ``init``).
    rule:
        The scheme's name (see :func:`asyncnet.registry.known`).
    params:
        The scheme's parameters (its ``[rule]`` table without ``name``).
    duration:
        Simulated time to run.
    data, analysis, output, cluster:
        The ``[data]``, ``[analysis]``, ``[output]`` and ``[cluster]`` tables.
    seed:
        The seed of every random stream of the run.
    name, description:
        What the scenario is called and what it shows.
    path, text:
        The file it was read from and its TOML (:func:`load` gives them);
        a ``text`` given here must describe the same scenario as the other
        arguments (it is what an event log embeds and ``replay`` re-runs).
    """

    def __init__(self, graph: nx.DiGraph, rule: str, *, duration: float,
                 params: dict | None = None, data: dict | None = None, seed: int = 0,
                 name: str = "scenario", analysis: dict | None = None,
                 output: dict | None = None, cluster: dict | None = None,
                 description: str = "", path: str | None = None, text: str | None = None,
                 _loaded: bool = False):
        if not isinstance(graph, nx.DiGraph):
            raise TypeError(f"graph must be a networkx.DiGraph (asyncnet.layered makes one), "
                            f"got {type(graph).__name__}")
        scenario_toml.check_args(rule=rule, params=params, data=data, analysis=analysis,
                                 output=output, cluster=cluster, seed=seed, name=name,
                                 description=description)
        self.graph = graph
        self.rule_name = rule
        self.rule_params = dict(params or {})
        self.duration = duration
        self.data = dict(data or {})
        self.seed = seed
        self.name = name
        self.analysis = dict(analysis or {})
        self.output = dict(output or {})
        self.cluster = dict(cluster or {})
        self.description = description
        self.path = path or f"<scenario {name}>"
        if text is None or not _loaded:  # built in Python: validate exactly as a file is
            made = self.to_toml()
            checked = load(self.path, made)
            # the values as read back: numpy numbers become plain ones (an np.int64
            # seed failed in the checkpoint's msgpack, an np.float32 eta the rule check)
            self.graph, self.duration, self.seed = checked.graph, checked.duration, checked.seed
            self.rule_params, self.data = checked.rule_params, checked.data
            self.analysis, self.output, self.cluster = \
                checked.analysis, checked.output, checked.cluster
            other = None if text is None else load(self.path, text)
            if other is not None and (other._made != checked._made
                                      or not nx.utils.graphs_equal(other.graph, checked.graph)):
                # a log would embed the text and replay re-run it: it must say what runs
                raise ScenarioError(f"{self.path}: the text given describes another "
                                    f"scenario than the arguments; leave text out")
            text = made if text is None else text
        self.text = text
        self._made = self._described()

    def _described(self) -> str:
        """What ``text`` was made from: a run compares it to catch a scenario changed
        after it was validated (the graph too: an edge's delay set in place ran while the
        log embedded the old one, and replay diverged at its first record)."""
        return repr((self.rule_name, self.rule_params, self.duration, self.seed, self.data,
                     self.analysis, self.output, self.cluster, self.name, self.description,
                     _graph_digest(self.graph)))

    def current(self) -> Scenario:
        """This scenario, or, if an attribute was changed since it was validated
        (``sc.seed = 2``, :meth:`with_params`), a new one validated from the
        attributes: its ``text`` (what an event log embeds and ``replay``
        re-runs) then says what runs.

        Returns
        -------
        A :class:`Scenario` whose ``text`` describes it.
        """
        if self._described() == self._made:
            return self
        return Scenario(self.graph, self.rule_name, duration=self.duration,
                        params=self.rule_params, data=self.data, seed=self.seed,
                        name=self.name, analysis=self.analysis, output=self.output,
                        cluster=self.cluster, description=self.description, path=self.path)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> Scenario:
        """Read and validate a scenario file.

        Parameters
        ----------
        path:
            A TOML scenario file.

        Returns
        -------
        The scenario.
        """
        return load(path)

    def to_toml(self) -> str:
        """The scenario as a TOML document (the file it was read from, if any).

        Returns
        -------
        TOML text that loads back to this scenario.
        """
        if getattr(self, "text", None):
            return self.text
        try:
            return scenario_toml.to_toml(self)
        except scenario_toml.Unwritable as e:
            raise ScenarioError(f"{self.path}: {e}: not a value a scenario file can hold (a "
                                f"number, a string, a boolean, or lists and tables of them)"
                                ) from None

    def with_params(self, **rule_params: Any) -> Scenario:
        """A copy with some scheme parameters changed (for unlogged extra runs).

        Parameters
        ----------
        **rule_params:
            Parameters of the scheme to change.

        Returns
        -------
        The new :class:`Scenario`.
        """
        other = copy.copy(self)
        other.rule_params = {**self.rule_params, **rule_params}
        return other  # its text is the original's until a logged run asks current()

    def __repr__(self) -> str:
        return (f"Scenario({self.name!r}, rule={self.rule_name!r}, "
                f"duration={self.duration:g}, seed={self.seed})")

    def build_rule(self) -> Any:
        """A fresh rule object with this scenario's parameters.

        Returns
        -------
        The scheme object (its dataclass, checked).
        """
        return make_rule(self.rule_name, self.rule_params, self.path)

    def build_network(self) -> Network:
        """The validated network (weights drawn from the scenario seed).

        Returns
        -------
        The :class:`~asyncnet.Network`.
        """
        rule = self.build_rule()
        try:
            return Network.from_graph(self.graph, seed=self.seed,
                                      require_dag=getattr(rule, "requires_dag", False))
        except NetworkError as e:
            raise ScenarioError(f"{self.path}: [network] {e}") from None

    def build_stream(self, net: Network, hold: float | None = None) -> Stream:
        """The data stream, checked against the network's populations.

        ``input_node``/``output_node`` name a population or a list of them
        (one layer written as several populations); by default every input
        (output) population, in natural order, is one layer.

        Parameters
        ----------
        net:
            The built network.
        hold:
            Override the data's ``hold``.

        Returns
        -------
        The stream the sources read.
        """
        d = dict(self.data)
        kind = d.pop("kind", "constant")
        ins = self._layer(d.pop("input_node", None), net.inputs(), "input", net)
        outs = self._layer(d.pop("output_node", None), net.outputs(), "output", net)
        rule = self.build_rule()
        if hasattr(rule, "stream"):  # a scheme with data kinds of its own
            if len(ins) > 1 or len(outs) > 1:
                raise ScenarioError(f"{self.path}: [data] rule {self.rule_name!r} feeds one "
                                    f"input and one output population; name them with "
                                    f"input_node and output_node")
            try:
                return rule.stream({"kind": kind, **d}, net, ins[0], outs[0], self.seed,
                                   self.duration)
            except DataError as e:
                raise ScenarioError(f"{self.path}: [data] {e}") from None
        try:
            check_kind_keys(kind, set(d))
        except DataError as e:
            raise ScenarioError(f"{self.path}: [data] {e} (rule {self.rule_name!r})") from None
        if d.get("batch", 1) != 1 and not getattr(rule, "batched", False):
            raise ScenarioError(f"{self.path}: [data] batch: rule {self.rule_name!r} does not "
                                f"take batched data (diffusion, leastaction and continuous do)")
        if hold is not None:
            d["hold"] = hold
        size = net.populations
        layered_io = len(ins) > 1 or len(outs) > 1
        inp = ins[0] if len(ins) == 1 else "the input layer"
        out = outs[0] if len(outs) == 1 else "the output layer"
        try:
            stream = make_stream(kind, n_in=sum(size[n].size for n in ins),
                                 n_out=sum(size[n].size for n in outs), input_node=inp,
                                 output_node=out, seed=self.seed, duration=self.duration, **d)
        except DataError as e:
            raise ScenarioError(f"{self.path}: [data] {e}") from None
        if layered_io:
            return LayerFeed(stream, [(n, size[n].size) for n in ins],
                             [(n, size[n].size) for n in outs])
        return stream

    def _layer(self, given: str | list | None, default: list[str], role: str,
               net: Network) -> list[str]:
        names = ([given] if isinstance(given, str) else list(given) if given is not None
                 else natural_order(default))
        if not names:
            raise ScenarioError(f"{self.path}: [data] the network has no {role} population")
        for node in names:
            if not isinstance(node, str) or node not in net.populations:
                raise ScenarioError(f"{self.path}: [data] {role}_node: unknown population "
                                    f"{node!r}")
        if len(set(names)) != len(names):
            raise ScenarioError(f"{self.path}: [data] {role}_node names a population twice")
        for node in names:
            # a target sent to a hidden population is not its error in any rule:
            # it would be dropped without a word
            if net.populations[node].role != role:
                what = "inputs are" if role == "input" else "targets are"
                raise ScenarioError(f"{self.path}: [data] {role}_node: population {node!r} "
                                    f"has role {net.populations[node].role!r}; {what} "
                                    f"given to {role} populations (set its role in "
                                    f"[network])")
        return names


def make_rule(name: str, params: dict, path: str = "<scenario>") -> Any:
    """Instantiate a rule by name, refusing parameters it does not have."""
    try:
        factory = get_scheme(name)
    except SchemeError as e:
        raise ScenarioError(f"{path}: [rule] name: {e}") from None
    try:
        schema.check(factory, params)
    except schema.ParamError as e:
        raise ScenarioError(f"{path}: [rule] {e} (rule {name!r})") from None
    sig = inspect.signature(factory)
    for k in params:
        if k not in sig.parameters:
            raise ScenarioError(f"{path}: [rule] unknown key {k!r} for rule {name!r} "
                                f"(known: {', '.join(sig.parameters)})")
    try:
        return factory(**params)
    except (TypeError, ValueError) as e:
        raise ScenarioError(f"{path}: [rule] {e}") from None


def _graph_digest(g: nx.DiGraph) -> str:
    """A digest of a graph's nodes, edges and attributes, in order (hashed a node or an
    edge at a time: no repr of a whole large graph held at once)."""
    h = hashlib.blake2b(digest_size=16)

    def plain(d: dict) -> list:  # an array's repr elides the middle of a long one
        return [(k, v.tolist() if hasattr(v, "tolist") else v) for k, v in d.items()]

    h.update(repr(plain(g.graph)).encode())
    for n, d in g.nodes(data=True):
        h.update(repr((n, plain(d))).encode())
    for u, v, d in g.edges(data=True):
        h.update(repr((u, v, plain(d))).encode())
    return h.hexdigest()


def load(path: str | os.PathLike, text: str | None = None) -> Scenario:
    """Read and validate a scenario file (or its ``text``, e.g. from a log)."""
    # named here: os.fspath's and tomllib's own errors name no argument
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a scenario's path must be a str or os.PathLike, got "
                        f"{type(path).__name__} {path!r}"[:200])
    if not isinstance(text, (str, type(None))):
        raise TypeError(f"a scenario's text must be a str (TOML), got "
                        f"{type(text).__name__} {text!r}"[:200])
    path = os.fspath(path)
    if text is None:
        try:
            text = read_text(path, "scenario")
        except OSError as e:
            raise ScenarioError(f"{path}: cannot read ({e.strerror})") from None
        except ValueError as e:
            raise ScenarioError(f"{path}: {e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML ({e})") from None
    except RecursionError:
        raise ScenarioError(f"{path}: not valid TOML (nested too deeply)") from None
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
    if not sc["duration"] >= 1e-6:
        raise ScenarioError(f"{path}: [scenario] key 'duration' must be at least one time "
                            f"quantum (1e-06), got {sc['duration']!r}")
    if sc["duration"] > MAX_DURATION:
        raise ScenarioError(f"{path}: [scenario] key 'duration' is too long: {sc['duration']:g} "
                            f"(at most {MAX_DURATION:.3g}: time is counted in "
                            f"{1_000_000:,} quanta per unit, in 64 bits)")
    rule = dict(doc["rule"])
    if not isinstance(rule.get("name"), str):
        raise ScenarioError(f"{path}: [rule] missing key 'name' (a string)")
    rule_name = rule.pop("name")
    analysis = dict(doc.get("analysis", {}))
    if not isinstance(analysis.get("kind", ""), str):
        raise ScenarioError(f"{path}: [analysis] key 'kind' must be a string")
    loss = doc.get("loss", {}).get("kind", "mse")
    if loss != "mse":
        raise ScenarioError(f"{path}: [loss] kind {loss!r} unknown (known: mse)")
    name = sc.get("name", os.path.splitext(os.path.basename(path))[0])
    if isinstance(name, str) and (not name.strip() or set(name) & {"/", "\\", "\0"}
                                  or name in (".", "..")):
        # the default log and checkpoint paths are runs/<name>...: "../x" left runs/,
        # and a NUL is in no file name (it was open()'s "embedded null byte" traceback)
        raise ScenarioError(f"{path}: [scenario] name {name!r} must be a plain file name "
                            f"(no path separators or NUL characters): runs/<name>.log is "
                            f"made from it")
    for key, value in doc.get("output", {}).items():  # paths: a NUL is in no file name
        if isinstance(value, str) and "\0" in value:
            raise ScenarioError(f"{path}: [output] key {key!r}: {value!r} holds a NUL "
                                f"character, which no file name can")
    graph = _graph(doc["network"], path)
    out = Scenario(graph, rule_name, params=rule, duration=float(sc["duration"]),
                   data=dict(doc.get("data", {})), seed=sc.get("seed", 0),
                   name=sc.get("name", os.path.splitext(os.path.basename(path))[0]),
                   analysis=analysis, output=dict(doc.get("output", {})),
                   cluster=dict(doc.get("cluster", {})),
                   description=sc.get("description", ""), path=path, text=text,
                   _loaded=True)
    workers = out.cluster.get("workers", 1)
    if workers < 1:
        raise ScenarioError(f"{path}: [cluster] key 'workers' must be at least 1, got {workers}")
    rule_obj = out.build_rule()  # parameters are checked now, not mid-run
    table = getattr(rule_obj, "analyses", {})
    kind = analysis.get("kind")
    if kind is not None and table and kind not in table:
        raise ScenarioError(f"{path}: [analysis] kind {kind!r} does not apply to rule "
                            f"{rule_name!r} (use {', '.join(sorted(table))})")
    kind = kind or getattr(rule_obj, "default_analysis", "none")
    used = {opt for cls in table.get(kind, ()) for opt in getattr(cls, "options", ())}
    extra = sorted(set(analysis) - {"kind"} - used)
    if extra:
        raise ScenarioError(f"{path}: [analysis] key {extra[0]!r} does not apply to kind "
                            f"{kind!r} of rule {rule_name!r}"
                            + (f" (its keys: {', '.join(sorted(used))})" if used else ""))
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
            if g.has_edge(ed["pre"], ed["post"]):  # networkx would merge the two silently
                raise ScenarioError(f"{path}: [[network.edges]] #{i + 1} {ed['pre']} -> "
                                    f"{ed['post']} is given twice: one projection a pair")
            attrs = {k: v for k, v in ed.items() if k not in ("pre", "post")}
            if "delay" not in attrs and "length" not in attrs and "delay" in net:
                attrs["delay"] = net["delay"]
            g.add_edge(ed["pre"], ed["post"], **attrs)
    if "speed" in net:
        g.graph["speed"] = net["speed"]
    return g
