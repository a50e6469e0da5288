"""YAML loading that remembers where every key stood.

pydantic reports errors by field path; users fix files by line. Composing the node tree once gives
both the data (as ``yaml.safe_load`` would build it) and a path → line index, and lets us reject
duplicate keys, which ``safe_load`` silently collapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedYaml:
    """A parsed YAML document and the 1-based line of every mapping key and sequence item."""

    data: object
    lines: dict[PathKey, int]

    def line_of(self, path: PathKey) -> int | None:
        """Line of the deepest known prefix of ``path`` (pydantic paths may go past the YAML)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


# libyaml's parser where the wheel has it (manifests of a thousand references parse ~5x faster).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlSyntaxError(ValueError):
    """The text is not YAML, or repeats a key; the message carries the line."""


def load_yaml(path: Path) -> LoadedYaml:
    """Read and parse ``path`` with the safe loader; raises OSError or YamlSyntaxError."""
    text = path.read_text(encoding="utf-8")
    return parse_yaml(text)


def parse_yaml(text: str) -> LoadedYaml:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return LoadedYaml(data=None, lines={})
        expanded = _expanded_size(node, {})
        if expanded > MAX_EXPANDED_NODES:
            raise YamlSyntaxError(
                f"the document expands to {expanded:,} values through its aliases (*name), more than "
                f"{MAX_EXPANDED_NODES:,}: write the values out, or use fewer nested aliases"
            )
        lines: dict[PathKey, int] = {}
        _index(node, (), lines, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlSyntaxError(f"{where}{exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc)) from exc
    finally:
        loader.dispose()
    return LoadedYaml(data=data, lines=lines)


MAX_EXPANDED_NODES = 1_000_000
"""Values a document may hold once its aliases are expanded (an alias bomb of nine nested levels
of nine holds 9**9); every consumer of the data walks the expanded tree."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the tree under ``node`` holds with every alias expanded, in time linear in
    the number of distinct nodes (an alias is the same node object, so each is counted once)."""
    if id(node) in sizes:
        return sizes[id(node)]
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = size
    return size


def _index(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], seen_nodes: set[int]) -> None:
    """Record the line of every key and item, entering each node once: an alias's target is
    indexed where it is defined, so the index stays linear in the document's size."""
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:bool":
                raise YamlSyntaxError(
                    f"line {line}: key {key} is read as a boolean (YAML 1.1 reads yes, no, on and off so): "
                    f"quote it, like '{key}'"
                )
            if key in seen:
                raise YamlSyntaxError(
                    f"line {line}: key {'.'.join(map(str, (*path, key)))!s} repeats the one on "
                    f"line {seen[key]}; keep one of them"
                )
            seen[key] = line
            lines[(*path, key)] = line
            _index(value_node, (*path, key), lines, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, seen_nodes)
