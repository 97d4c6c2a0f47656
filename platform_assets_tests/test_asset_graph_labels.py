"""What the asset graph shows of an asset: the last component of its key (``dimuser`` for bronze/dimuser,
silver/dimuser and gold/dimuser alike) and its kinds, drawn on the node (bronze, silver and gold with
Dagster's medallion icons). So an asset's layer is one of its kinds: the nodes that share a name differ."""

from __future__ import annotations

from collections import defaultdict

from platform_assets.definitions import build_definitions
from platform_assets.settings import Settings

LAYERS = {"raw", "bronze", "silver", "gold"}


def _nodes(tmp_path):
    graph = build_definitions(Settings(data_dir=tmp_path)).resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}


def test_every_layered_asset_has_its_layer_among_its_kinds(tmp_path):
    nodes = _nodes(tmp_path)
    layered = {key: node for key, node in nodes.items() if key.split("/")[0] in LAYERS}
    assert len(layered) >= 20
    wrong = {
        key: sorted(node.kinds)
        for key, node in layered.items()
        if set(node.kinds) & LAYERS != {key.split("/")[0]}
    }
    assert not wrong, f"assets whose kinds do not name their layer (exactly one): {wrong}"
    # a topic is drawn as kafka, and claims no layer
    assert set(nodes["kafka/trades"].kinds) & LAYERS == set() and "kafka" in nodes["kafka/trades"].kinds
    assert all(len(node.kinds) <= 3 for node in nodes.values())  # what Dagster accepts and draws


def test_the_nodes_that_share_a_name_show_different_kinds(tmp_path):
    shown = defaultdict(list)
    for key, node in _nodes(tmp_path).items():
        shown[key.split("/")[-1]].append((key, frozenset(node.kinds)))
    shared = {name: nodes for name, nodes in shown.items() if len(nodes) > 1}
    assert {"dimuser", "factstream", "trades", "countries", "loan_applications"} <= set(shared)
    alike = {
        name: [k for k, _ in nodes]
        for name, nodes in shared.items()
        if len({kinds for _, kinds in nodes}) < len(nodes)
    }
    assert not alike, f"nodes the graph draws alike: {alike}"
    layers = {key: set(kinds) & (LAYERS | {"kafka"}) for key, kinds in shared["trades"]}
    assert layers == {"kafka/trades": {"kafka"}, "bronze/trades": {"bronze", "kafka"}}
