"""General rules checked on generated input (Hypothesis) against independent oracles."""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from floe_infra.model import names
from floe_infra.model.manifest import LoadedManifest, Manifest
from floe_infra.model.yaml_source import YamlSyntaxError, parse_yaml

LOWER_DIGITS = string.ascii_lowercase + string.digits


def _valid(rule: Any, value: str) -> bool:
    try:
        rule(value)
    except ValueError:
        return False
    return True


def _dns_label_oracle(s: str) -> bool:
    return 0 < len(s) <= 63 and all(c in LOWER_DIGITS + "-" for c in s) and s[0] != "-" and s[-1] != "-"


def _slug_oracle(s: str, limit: int) -> bool:
    words = s.split("-")
    return 0 < len(s) <= limit and all(w and all(c in LOWER_DIGITS for c in w) for w in words)


names_text = st.text(alphabet=LOWER_DIGITS + "-_. A", max_size=70)


@given(names_text)
def test_dns_labels_match_the_kubernetes_rule(s: str) -> None:
    assert _valid(names.dns_label, s) == _dns_label_oracle(s)


@given(names_text)
def test_dns_names_are_dot_separated_labels_of_at_most_253(s: str) -> None:
    oracle = 0 < len(s) <= 253 and all(_dns_label_oracle(part) for part in s.split("."))
    assert _valid(names.dns_name, s) == oracle


@given(st.text(alphabet=LOWER_DIGITS + "-_A ", max_size=70))
def test_slugs_are_what_infisical_slugify_leaves_unchanged(s: str) -> None:
    assert _valid(names.slug, s) == _slug_oracle(s, names.MAX_PROJECT_SLUG)
    assert _valid(names.environment_slug, s) == _slug_oracle(s, names.MAX_ENVIRONMENT_SLUG)


@given(st.integers(min_value=0, max_value=10**13), st.sampled_from(sorted(names.UNIT_SECONDS)))
def test_intervals_round_trip_into_go_durations_within_the_operators_range(n: int, unit: str) -> None:
    text = f"{n}{unit}"
    seconds = n * names.UNIT_SECONDS[unit]
    in_range = names.MIN_INTERVAL_SECONDS <= seconds <= names.MAX_INTERVAL_SECONDS and len(str(n)) <= 12
    assert _valid(names.interval, text) == in_range
    if in_range:
        go = names.go_duration(text)
        assert go == f"{seconds}s" and names.go_duration(go) == go  # Go's form is a manifest interval too


@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=30))
def test_object_names_are_valid_and_distinct_when_cut(a: str, b: str, c: str) -> None:
    name = names.object_name(a, b, c, max_length=63)
    assert len(name) <= 63
    if name:
        assert _valid(names.dns_name, name)


slug_st = st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}", fullmatch=True)
path_st = st.from_regex(r"/([A-Za-z0-9_-]{1,8}(/[A-Za-z0-9_-]{1,8}){0,3})?", fullmatch=True)
key_st = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(max_size=12),
)
yaml_keys = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=10).filter(
    lambda k: not isinstance(yaml.safe_load(k), bool)  # YAML 1.1 booleans as keys are refused on purpose
)
yaml_data = st.recursive(
    yaml_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(yaml_keys, children, max_size=4),
    max_leaves=20,
)


@given(yaml_data, st.booleans())
def test_the_yaml_loader_reads_what_safe_load_reads(data: Any, flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow)
    assert parse_yaml(text).data == yaml.safe_load(text)


section_names = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda s: s not in ("plugins", "secrets"))
ref_names = st.from_regex(r"[a-z0-9]{1,6}(-[a-z0-9]{1,6}){0,2}", fullmatch=True)


@given(
    st.dictionaries(
        section_names,
        st.tuples(section_names, st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), ref_names, max_size=3)),
        max_size=4,
    )
)
@settings(max_examples=60)
def test_every_secret_ref_in_a_platform_section_becomes_a_reference(
    sections: dict[str, tuple[str, dict[str, str]]],
) -> None:
    doc: dict[str, Any] = {"plugins": {"secrets": {"type": "k8s"}}}
    for name, (typ, refs) in sections.items():
        doc[name] = {"type": typ, **{f"{field}_secret_ref": ref for field, ref in refs.items()}}
    loaded = LoadedManifest("manifest.yaml", Manifest.model_validate(doc), parse_yaml(yaml.safe_dump(doc)))
    wanted = {ref for _, refs in sections.values() for ref in refs.values()}
    try:
        references = loaded.references("floe-jobs")
    except Exception as exc:  # one reference read from two folders: refused by design
        assert "declare secrets." in str(exc)
        return
    assert {r.name for r in references} == wanted
    for r in references:
        owners = sorted(n for n, (_, refs) in sections.items() if r.name in refs.values())
        assert r.path == f"/{owners[0]}/{sections[owners[0]][0]}"


def test_the_loader_refuses_what_is_not_yaml() -> None:
    with pytest.raises(YamlSyntaxError):
        parse_yaml("a: [unclosed\n")
