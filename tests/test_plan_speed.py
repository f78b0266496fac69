"""The plan's speed-ups change no byte of it (issue 15): the YAML written through libyaml is the
text `yaml.safe_dump` writes, on the real plans, on a generated mesh and on arbitrary data; the
network policies built from indexes are those the per-namespace scans built; the collector tuned
for a run is restored after it."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from components.graph.model import HTTP_PROTOCOLS, ExternalHost, MeshService
from components.security import network_policy
from tests.conftest import STACKS, parsed_stack
from tools import bench_stacks, engine, json_text
from tools import plan as plan_tool
from tools.engine import attempt, collector_tuned, run_stack

GENERATED = 60  # services: 6 namespaces, cross-namespace calls, SLOs, external hosts


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> tuple[Path, Any]:
    """A generated mesh (tools/bench_stacks.py), its stack file and its run: once per session
    (a module-scoped fixture would be rebuilt for each stack of the parametrized `plan`)."""
    path = bench_stacks.write(tmp_path_factory.mktemp("stack"), GENERATED)
    return path, run_stack(bench_stacks.stack_name(GENERATED), path)


def _documents(run) -> list[dict[str, Any]]:
    out = [plan_tool.manifest(r) for r in run.resources if plan_tool.is_manifest(r)]
    return out + [plan_tool.chart(r) for r in run.resources if r.type in plan_tool.HELM_TYPES]


def _folder(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_every_plan_document_is_written_as_safe_dump_writes_it(plan, generated):
    """Each committed stack's plan (the session's `plan` fixture) and a generated mesh's."""
    run, _ = plan
    docs = _documents(run) + _documents(generated[1])
    assert len(docs) > 100
    masked = [d for d in docs if not plan_tool._plain_data(d)]
    assert masked, "the corpus must hold documents the masked path writes (PromQL, JSON)"
    for doc in docs:
        assert plan_tool.dump_yaml(doc) == yaml.safe_dump(doc, sort_keys=False)


def test_the_plan_folder_is_byte_identical_to_the_pure_python_one(generated, tmp_path, monkeypatch):
    _, run = generated
    plan_tool.write(run, tmp_path / "fast")
    monkeypatch.setattr(plan_tool, "dump_yaml", lambda obj: yaml.safe_dump(obj, sort_keys=False))
    plan_tool.write(run, tmp_path / "pure")
    fast, pure = _folder(tmp_path / "fast"), _folder(tmp_path / "pure")
    assert fast.keys() == pure.keys() and len(fast) > GENERATED
    assert [k for k in fast if fast[k] != pure[k]] == []


def test_without_libyaml_the_pure_emitter_writes(monkeypatch):
    monkeypatch.setattr(plan_tool, "_C_DUMPER", None)
    doc = {"a": "x\ny", "b": [1, "é"]}
    assert plan_tool.dump_yaml(doc) == yaml.safe_dump(doc, sort_keys=False)


# Strings the two emitters might write differently: YAML words, indicators, quotes, spaces at
# the ends, line breaks next to spaces, control and non-ASCII characters, long text to fold.
_TRICKY = st.sampled_from(
    [
        "", " ", "a b", "yes", "null", "~", "1", "0x1F", "1.5", "-", "- a", ": a", "a: b", "#x",
        "a #b", "'q'", '"d"', "\\", "---", "...", "a\nb", "a\n b", "a \nb", "\n", "\t", "é",
        "日本", "\x00", "\x7f", "\u2028", "\ufeff", "  lead", "trail  ", "{x}", "[y]", "*a", "&b",
        "!t", "%p", "@a", "`b", "a,b", "?x", "? x", "\r\n", "=", "<<",
    ]
)  # fmt: skip
_TEXT = st.one_of(
    _TRICKY,
    st.text(max_size=40),
    st.lists(
        st.one_of(
            _TRICKY, st.text(st.characters(min_codepoint=9, max_codepoint=0x2030), max_size=12)
        ),
        max_size=40,
    ).map(" ".join),
    st.lists(_TRICKY, max_size=40).map("".join),
)
_KEYS = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8).map("-".__add__),
    _TRICKY,
)
_DATA = st.recursive(
    st.one_of(_TEXT, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(_KEYS, _DATA, max_size=5))
@example({"a": {"-1": [{"-x": " " * 8 + "a b " * 12 + "\x1f", "- y": [["\n" * 3]]}]}})
@example({"0": {"0": {"-00000000008": " " * 8 + "a b " * 4 + "null 0x1F \ufeff trail \x1f\u0100"}}})
def test_any_json_like_document_is_written_as_safe_dump_writes_it(doc):
    assert plan_tool.dump_yaml(doc) == yaml.safe_dump(doc, sort_keys=False)


# --- network policies: the per-namespace scans they replaced, as the specification ---------------


def _scanned_graph_policies(namespace: str, services: Sequence[MeshService]) -> list[dict]:
    ports: dict[str, list[int]] = {}
    for s in services:
        ports.setdefault(s.namespace, [])
        ports[s.namespace] += [p.port for p in s.ports if p.port not in ports[s.namespace]]
    out = []
    for src, dst in sorted(network_policy.cross_namespace_edges(services)):
        tcp = network_policy._tcp(*sorted(ports[dst]))
        if dst == namespace:
            peer = {"from": [{"namespaceSelector": network_policy.namespace_selector(src)}]}
            spec = {"policyTypes": ["Ingress"], "ingress": [{**peer, "ports": tcp}]}
            out.append(network_policy.network_policy(namespace, f"allow-from-{src}", spec))
        if src == namespace:
            peer = {"to": [{"namespaceSelector": network_policy.namespace_selector(dst)}]}
            spec = {"policyTypes": ["Egress"], "egress": [{**peer, "ports": tcp}]}
            out.append(network_policy.network_policy(namespace, f"allow-to-{dst}", spec))
    return out


def _scanned_ports(namespace: str, services, hosts) -> tuple[list[int], list[int]]:
    direct = sorted({h.port for h in hosts if namespace in h.namespaces and not h.egress_gateway})
    canaried = sorted(
        {
            p.port
            for s in services
            if s.namespace == namespace and s.canary is not None
            for p in s.ports
            if p.protocol in HTTP_PROTOCOLS
        }
    )
    return direct, canaried


def _graphs(generated_path: Path):
    for stack in STACKS:
        yield stack, parsed_stack(stack).graph
    from components.config import parse
    from tools.engine import NAMESPACE, read_stack_config

    values, secrets, _ = read_stack_config(generated_path)
    raw = {k.removeprefix(NAMESPACE): v for k, v in values.items() if k.startswith(NAMESPACE)}
    yield "generated", parse(raw, frozenset(k.removeprefix(NAMESPACE) for k in secrets)).graph


def test_indexed_network_policies_are_the_scanned_ones(generated):
    crossing = 0
    for name, graph in _graphs(generated[0]):
        services, hosts = graph.services, graph.external_hosts
        for ns in graph.namespace_names:
            policies = network_policy.network_policies(ns, services, hosts)
            graph_part = network_policy.graph_policies(ns, services)
            assert graph_part == _scanned_graph_policies(ns, services), (name, ns)
            crossing += len(graph_part)
            direct, canaried = _scanned_ports(ns, services, hosts)
            ext = network_policy.external_policies(ns, hosts)
            load = network_policy.load_test_policies(ns, services)
            assert [p["spec"]["egress"][0]["ports"] for p in ext] == (
                [network_policy._tcp(*direct)] if direct else []
            )
            assert [p["spec"]["ingress"][0]["ports"] for p in load] == (
                [network_policy._tcp(*canaried)] if canaried else []
            )
            assert policies == (network_policy.base_policies(ns) + graph_part + ext + load), (
                name,
                ns,
            )
            # A list (not the graph's tuple) is never served from the last graph's index.
            assert network_policy.graph_policies(ns, list(services)) == graph_part
    assert crossing > 0, "the corpus must hold calls across namespaces"


def test_a_new_graph_is_never_answered_from_the_previous_ones_index():
    def svc(name: str, ns: str, port: int, callers: tuple = ()) -> MeshService:
        return MeshService.model_validate(
            {
                "name": name,
                "namespace": ns,
                "serviceAccount": name,
                "ports": [{"name": "tcp", "port": port, "protocol": "tcp"}],
                "callers": [{"service": c} for c in callers],
            }
        )

    first = (svc("a", "x", 1000), svc("b", "y", 2000, ("a",)))
    second = (svc("a", "x", 1000), svc("b", "y", 3000, ("a",)))
    ports = [
        p["spec"]["egress"][0]["ports"]
        for graph in (first, second)
        for p in network_policy.graph_policies("x", graph)
    ]
    assert ports == [[{"protocol": "TCP", "port": 2000}], [{"protocol": "TCP", "port": 3000}]]
    hosts = (ExternalHost.model_validate({"host": "a.example.net", "namespaces": ["x"]}),)
    other = (ExternalHost.model_validate({"host": "a.example.net", "namespaces": ["y"]}),)
    assert network_policy.external_policies("x", hosts)
    assert network_policy.external_policies("x", other) == []


# --- the collector, tuned for a run and restored -------------------------------------------------


def test_the_collector_is_restored_after_a_run_and_after_a_failure():
    before = gc.get_threshold()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with collector_tuned():
        assert not gc.isenabled()
        made = [object()]  # tracked by the collector
    assert gc.isenabled() and gc.get_threshold() == before and gc.get_freeze_count() == 0
    young = gc.get_objects(generation=0) + gc.get_objects(generation=1)
    assert all(o is not made for o in young), "the run's objects joined the oldest generation"
    with pytest.raises(RuntimeError), collector_tuned():
        raise RuntimeError("a failing program")
    assert gc.isenabled() and gc.get_freeze_count() == 0

    def failing():
        raise RuntimeError("boom")

    run = attempt("dev", program=failing)
    assert isinstance(run.error, RuntimeError)
    assert gc.isenabled() and gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_collector_already_off_or_frozen_is_left_so():
    gc.disable()
    try:
        with collector_tuned():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    mine = [object()]  # tracked; frozen below by someone else
    gc.freeze()
    try:
        with collector_tuned():
            pass
        # Still frozen: the permanent generation is not among those get_objects lists.
        assert gc.isenabled() and all(o is not mine for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is mine for o in gc.get_objects())


def test_garbage_a_run_leaves_is_still_collected():
    class Cycle:
        pass

    with collector_tuned():
        garbage = Cycle()
        garbage.me = garbage
        probe = weakref.ref(garbage)
        del garbage
    assert probe() is not None  # not collected during the run
    gc.collect()
    assert probe() is None


def test_generated_stacks_are_valid_and_grow_in_proportion(tmp_path):
    small = bench_stacks.validate(bench_stacks.write(tmp_path, 50))
    big = bench_stacks.validate(bench_stacks.write(tmp_path, 200))
    assert small["services"] == 50 and big["services"] == 200
    for key in ("namespaces", "callers", "slos", "externalHosts"):
        assert small[key] > 0 and 3.5 <= big[key] / small[key] <= 4.5, key
    with pytest.raises(FileExistsError):  # never overwrites a file
        bench_stacks.write(tmp_path, 50)
    again = tmp_path / "again"
    again.mkdir()
    first = (tmp_path / "Pulumi.bench-n50.yaml").read_bytes()
    assert bench_stacks.write(again, 50).read_bytes() == first, "generated stacks are stable"


# --- the mock monitor, served inline and without the SDK's round trip of plain inputs ---------


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
@pytest.mark.parametrize("stack", STACKS)
def test_the_fast_registration_answers_as_the_mock_monitor_does(stack, preview, monkeypatch):
    """Every registration of a committed stack is answered twice, by `register_plain` and by
    the SDK's `MockMonitor.RegisterResource`, from the same fake cloud state; the answers must
    be the same message, byte for byte. A preview sends unknowns, a stack sends secrets: those
    take the SDK's path, and both paths must be seen."""
    import itertools

    from pulumi.runtime.mocks import MockMonitor

    seen = {"fast": 0, "sdk": 0}
    make_monitor = engine._make_monitor

    def checking_monitor(mocks, run):
        monitor = make_monitor(mocks, run)
        fast = monitor.register_plain

        def register_plain(request, inputs):
            start = next(engine._TOKENS)  # the fake cloud mints a token per cluster read
            monkeypatch.setattr(engine, "_TOKENS", itertools.count(start))
            answer = fast(request, inputs)
            created = run.created.value
            monkeypatch.setattr(engine, "_TOKENS", itertools.count(start))
            expected = MockMonitor.RegisterResource(monitor, request)
            run.created.value = created
            assert answer.SerializeToString(deterministic=True) == expected.SerializeToString(
                deterministic=True
            ), f"{request.type} {request.name}: the fast answer differs from the SDK's"
            seen["fast"] += 1
            return answer

        sdk_path = monitor.RegisterResource

        def register(request):
            if not engine.plain_wire(engine._wire(request.object)):
                seen["sdk"] += request.type != "pulumi:pulumi:Stack"
            return sdk_path(request)

        monitor.register_plain = register_plain
        monitor.RegisterResource = register
        return monitor

    monkeypatch.setattr(engine, "_make_monitor", checking_monitor)
    run = run_stack(stack, preview=preview)
    assert seen["fast"] + seen["sdk"] == len(run.resources)
    assert seen["fast"] > len(run.resources) / 2
    assert seen["sdk"] > 0, "a stack's secrets (and a preview's unknowns) take the SDK's path"


@pytest.mark.parametrize(
    "value, plain",
    [
        ({"a": [1.0, "x", None, True, {"b": {}}]}, True),
        ({"a": [{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}]}, False),
        ({"a": {"b": ["04da6b54-80e4-46f7-96ec-b56ff0331ba9"]}}, False),
        ({"4dabf18193072939515e22adb298388d": "5cf8f73096256a8f31e491e813e4eb8e"}, False),
    ],
    ids=["plain", "secret", "unknown", "resource"],
)
def test_only_plain_wire_values_take_the_fast_path(value, plain):
    assert engine.plain_wire(value) is plain


def test_the_monitor_plumbing_is_restored_after_a_run_and_after_a_failure():
    from pulumi.runtime import mocks
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.sync_await import _ensure_event_loop

    loop = _ensure_event_loop()
    before = (mocks._sync_await, sdk_resource._get_stack_trace, loop._default_executor)
    run_stack("dev")
    assert (mocks._sync_await, sdk_resource._get_stack_trace, loop._default_executor) == before

    def failing():
        raise RuntimeError("boom")

    assert isinstance(attempt("dev", program=failing).error, RuntimeError)
    assert (mocks._sync_await, sdk_resource._get_stack_trace, loop._default_executor) == before


def test_an_answer_that_would_wait_is_refused_not_hung():
    import asyncio

    async def waits():
        await asyncio.sleep(0)

    assert engine._resolved_now(_finished()) == 42
    with pytest.raises(RuntimeError, match="unresolved value"):
        engine._resolved_now(waits())


async def _finished() -> int:
    return 42


def test_nested_inputs_are_answered_as_the_mock_monitor_does():
    """Shapes the committed stacks may not send: nulls in lists, empty containers, nested
    maps, fake cloud outputs beside the inputs; a null in a map (which the SDK's deserializer
    drops) takes the SDK's path."""
    from google.protobuf import struct_pb2
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.proto import resource_pb2

    answers = []

    def program():
        run = engine.Run(stack="dev")
        monitor = engine._make_monitor(engine._make_mocks(run), run)
        inputs = struct_pb2.Struct()
        nulls = struct_pb2.Struct()
        nulls.update({"gone": None, "kept": {"inner": None}})
        assert not engine.plain_wire(engine._wire(nulls))
        inputs.update({"kept": {"inner": {"a": "b"}, "list": [None, 1, "x", {}]}, "empty": []})
        for type_ in ("random:index/randomId:RandomId", "kubernetes:core/v1:ConfigMap"):
            request = resource_pb2.RegisterResourceRequest(
                type=type_, name="probe", custom=True, object=inputs
            )
            wire = engine._wire(request.object)
            assert engine.plain_wire(wire)
            fast = monitor.register_plain(request, wire)
            slow = MockMonitor.RegisterResource(monitor, request)
            answers.append((fast, slow))

    run = attempt("dev", program=program)
    assert run.error is None, run.error
    assert len(answers) == 2
    for fast, slow in answers:
        assert fast.SerializeToString(deterministic=True) == slow.SerializeToString(
            deterministic=True
        )
        assert {"kept", "empty"} <= set(fast.object.fields)


# --- the stack file read by libyaml, with PyYAML's verdict ------------------------------------

_MUTATION_TEXT = st.sampled_from(
    [
        *("\t", ":", ": ", "-", "- ", "'", '"', "&a ", "*a", "!", "!!str ", "%", "#", " #"),
        *("{", "}", "[", "]", "?", "|", ">", "@", "`", ",", "\\", "\n", "\n  ", "\n- ", " "),
        *("<<: ", "--- ", "...", "\x07", "\x00", "\x0b", "\x85", "\u2028", "\ufeff", "\xa0"),
        *("\U0001f600", "null"),
    ]
)
_MUTATIONS = st.lists(
    st.tuples(
        st.floats(0, 1), st.sampled_from(["insert", "delete", "repeat-line"]), _MUTATION_TEXT
    ),
    min_size=1,
    max_size=3,
)


def _mutated(text: str, mutations) -> str:
    for where, what, insert in mutations:
        at = int(where * (len(text) - 1))
        if what == "insert":
            text = text[:at] + insert + text[at:]
        elif what == "delete":
            text = text[:at] + text[at + 1 + at % 5 :]
        else:
            lines = text.split("\n")
            lines.insert(at % len(lines), lines[(at * 7) % len(lines)])
            text = "\n".join(lines)
    return text


def _verdict(path: Path, text: str, read) -> tuple[str, Any]:
    try:
        return "ok", read(path, text)
    except engine.StackFileError as error:
        return "refused", str(error)


@settings(
    max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
@given(st.sampled_from(STACKS), _MUTATIONS)
@example("dev", [(0.5, "insert", "\t")])
@example("production", [(0.7, "insert", "?")])
@example("staging", [(0.3, "insert", "\ufeff")])
def test_a_stack_file_reads_as_pyyaml_alone_reads_it(stack, mutations):
    """Committed stack files, mutated: the fast reader's config, or its refusal word for word,
    is PyYAML's own (`_StackLoader` alone)."""
    path = Path(f"Pulumi.{stack}.yaml")
    text = _mutated(engine.stack_file(stack).read_text(), mutations)

    def pure(p: Path, t: str) -> Any:
        return engine._constructed_config(p, t, engine._StackLoader)

    assert _verdict(path, text, engine._stack_config) == _verdict(path, text, pure)


def test_the_fast_reader_is_used_and_reads_every_committed_stack_as_pyyaml(monkeypatch):
    used = []
    fast = engine._FastStackLoader
    assert fast is not None, "PyYAML here is built with libyaml"

    def spy(text):
        used.append(text)
        return fast(text)

    monkeypatch.setattr(engine, "_FastStackLoader", spy)
    for stack in STACKS:
        text = engine.stack_file(stack).read_text()
        pure = engine._constructed_config(Path("x"), text, engine._StackLoader)
        assert engine._stack_config(Path("x"), text) == pure
    assert len(used) == len(STACKS)


# --- JSON laid out by tools/json_text.py, as json.dumps(indent=2) lays it out -------------------

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_JSON, st.booleans())
@example({"b": [1, 2.5, None, True, "é\n\x00"], "a": {}, "": []}, True)
@example([float("nan"), {"x": float("inf")}], False)
@example({1: "non-string key", "a": 1}, False)
@example({True: 1, None: 2}, True)
def test_json_text_is_json_dumps_indent_2(value, sort_keys):
    """The same text, or the same error (a key json.dumps cannot sort)."""

    def outcome(dumps) -> tuple[str, str]:
        try:
            return "text", dumps()
        except TypeError as error:
            return "TypeError", str(error)

    assert outcome(lambda: json_text.dumps(value, sort_keys)) == outcome(
        lambda: json.dumps(value, indent=2, sort_keys=sort_keys)
    )


def test_json_text_leaves_odd_values_to_json_dumps():
    shared = [1]
    circular: list = []
    circular.append(circular)

    class Text(str):
        pass

    assert json_text.dumps([shared, shared]) == json.dumps([shared, shared], indent=2)
    assert json_text.dumps({"a": Text("x")}) == json.dumps({"a": Text("x")}, indent=2)
    with pytest.raises(ValueError, match="Circular reference"):
        json_text.dumps(circular)
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text.dumps({"a": object()})


def test_plan_json_files_are_json_dumps_indent_2(plan, generated):
    _, out = plan
    for name in ("resources.json", "outputs.json", "digests.json", ".service-mesh-plan"):
        text = (out / name).read_text()
        sort_keys = name == "digests.json"
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=sort_keys) + "\n"
    docs = [r.to_json() for r in generated[1].resources]
    assert json_text.dumps(docs) == json.dumps(docs, indent=2)


def test_shared_objects_floats_and_a_full_resolver_cache_still_write_as_safe_dump(monkeypatch):
    """A list or map met twice is written with an anchor and an alias, as the representer
    writes it; floats take the representer's own spelling; a cache past its limit starts
    again and answers the same."""
    shared = {"k": ["v", 1]}
    docs = [
        {"a": shared, "b": shared, "c": [shared]},
        {"f": [0.5, 1e-05, 1e20, -0.0, float("inf"), float("nan"), 3.0]},
        {"true": "true", "null": "~", "n": "0x1F", "t": "2024-01-01", "e": "", "s": "yes"},
    ]
    monkeypatch.setattr(plan_tool._CachedResolver, "_LIMIT", 3)
    for doc in docs * 2:
        assert plan_tool.dump_yaml(doc) == yaml.safe_dump(doc, sort_keys=False)
    assert "&id001" in plan_tool.dump_yaml(docs[0])
    assert len(plan_tool._CachedResolver._answers) <= plan_tool._CachedResolver._LIMIT + 1


def test_the_recorded_wire_dicts_are_message_to_dict_in_the_same_order(plan):
    """`engine._wire` against protobuf's own MessageToDict, on every registration's inputs of
    a committed stack (order included: it is the order of `inputs` in resources.json)."""
    from google.protobuf import json_format, struct_pb2

    run, _ = plan

    def ordered(value: Any) -> Any:
        if isinstance(value, dict):
            return [(k, ordered(v)) for k, v in value.items()]
        if isinstance(value, list):
            return [ordered(v) for v in value]
        return (type(value).__name__, value)

    for resource in run.resources:
        struct = struct_pb2.Struct()
        struct.update(resource.wire_inputs)
        expected = json_format.MessageToDict(struct, preserving_proto_field_name=True)
        assert ordered(engine._wire(struct)) == ordered(expected), resource.urn
    odd = struct_pb2.Struct()
    odd.update({"n": None, "e": {}, "l": [], "x": [1.5, True, "s", None, {"y": []}]})
    odd.fields["unset"].Clear()
    assert ordered(engine._wire(odd)) == ordered(json_format.MessageToDict(odd))
    odd.update({"inf": float("inf")})
    with pytest.raises(ValueError, match="Infinity"):
        engine._wire(odd)


@pytest.mark.parametrize("stack", STACKS)
def test_a_finished_run_leaves_no_task_running(stack):
    """What lets the engine skip its walk of the event loop's tasks after a run that finished
    (`_cancel_leftover_tasks`): nothing of the run is still pending, in preview too."""
    import asyncio

    from pulumi.runtime.sync_await import _ensure_event_loop

    for preview in (False, True):
        run_stack(stack, preview=preview)
        loop = _ensure_event_loop()
        assert [t for t in asyncio.all_tasks(loop) if not t.done()] == []
