"""The tag catalogue loader: the shipped tags.toml, dtypes, and every validation error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.catalogue import (
    CatalogueError,
    TagCatalogue,
    TagDef,
    default_catalogue,
    parse_catalogue,
    read_catalogue,
)


def tag(
    name: str, group: str = "realtime", kind: str = "float", **extra: object
) -> dict[str, object]:
    return {"name": name, "group": group, "kind": kind, "unit": "", "text": name, **extra}


def test_shipped_catalogue_loads_in_file_order() -> None:
    catalogue = default_catalogue()
    assert catalogue.groups == ("realtime", "energy", "demand", "prepaid")
    assert len(catalogue) == 50
    assert catalogue.names[:3] == ("u_a", "u_b", "u_c")
    assert [t.index for t in catalogue] == list(range(50))
    assert catalogue.by_name["e_total"].group == "energy"
    assert catalogue.tag("u_a").unit == "V"
    assert "balance_fen" in catalogue
    assert "nope" not in catalogue


def test_shipped_group_tags_partition_the_catalogue() -> None:
    catalogue = default_catalogue()
    grouped = [t for g in catalogue.groups for t in catalogue.group_tags(g)]
    assert sorted(grouped, key=lambda t: t.index) == list(catalogue.tags)
    assert [t.name for t in catalogue.group_tags("demand")] == ["demand", "demand_time"]


@pytest.mark.parametrize(
    ("name", "dtype", "fill_is_nan"),
    [
        ("u_a", np.float64, True),
        ("balance_fen", np.int64, False),
        ("relay", np.uint8, False),
    ],
)
def test_dtype_per_kind(name: Any, dtype: Any, fill_is_nan: Any) -> None:
    tag_def = default_catalogue().tag(name)
    assert tag_def.dtype == np.dtype(dtype)
    assert default_catalogue().dtype(name) == np.dtype(dtype)
    assert np.isnan(tag_def.fill) == fill_is_nan


def test_default_catalogue_is_cached_and_frozen() -> None:
    catalogue = default_catalogue()
    assert default_catalogue() is catalogue
    with pytest.raises(AttributeError):
        catalogue.groups = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        catalogue.by_name["x"] = catalogue.tags[0]  # type: ignore[index]


def test_unknown_tag_and_group_lookups_name_them() -> None:
    catalogue = default_catalogue()
    with pytest.raises(KeyError, match="unknown tag 'volts'"):
        catalogue.tag("volts")
    with pytest.raises(KeyError, match=r"unknown tag group 'fast'.*realtime"):
        catalogue.group_tags("fast")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"groups": ["realtime"], "tags": [tag("a"), tag("a")]}, r"tags\[1\] \(a\).*tags\[0\]"),
        ({"groups": ["realtime"], "tags": [tag("a", group="fast")]}, r"group 'fast' is not one"),
        ({"groups": ["realtime"], "tags": [tag("a", kind="str")]}, r"tags\[0\]\.kind: 'str'"),
        ({"groups": ["realtime"], "tags": [{"name": "a", "group": "realtime"}]}, "missing field"),
        ({"groups": ["realtime"], "tags": [tag("a", unit=3)]}, r"tags\[0\]\.unit: must be a str"),
        ({"groups": ["realtime"], "tags": [tag("a", scale=2)]}, r"unknown key\(s\) scale"),
        ({"groups": ["realtime"], "tags": [tag("A-1")]}, "not a valid name"),
        ({"groups": ["realtime", "realtime"], "tags": [tag("a")]}, "listed twice"),
        ({"groups": ["realtime", "energy"], "tags": [tag("a")]}, "'energy' has no tags"),
        ({"groups": [], "tags": []}, "at least one group"),
        ({"groups": "realtime", "tags": []}, "groups: must be a list of strings"),
        ({"groups": ["realtime"], "tags": {"a": 1}}, "tags: must be a list"),
        ({"groups": ["realtime"], "tags": ["a"]}, r"tags\[0\]: must be a table"),
        ({"groups": ["realtime"], "tags": [], "extra": 1}, r"unknown key\(s\) extra"),
    ],
)
def test_invalid_catalogues_are_rejected_with_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogueError, match=message) as caught:
        parse_catalogue(data, "x.toml")
    assert str(caught.value).startswith("x.toml: ")


def test_direct_construction_is_validated_too() -> None:
    bad = TagDef("a", "g", "float", "", "", index=1)
    with pytest.raises(CatalogueError, match="index is 1, expected 0"):
        TagCatalogue(groups=("g",), tags=(bad,))


def test_read_catalogue_reports_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(CatalogueError, match=r"missing\.toml: cannot read"):
        read_catalogue(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text('groups = ["realtime"\n', encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"broken\.toml: invalid TOML"):
        read_catalogue(broken)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'groups = ["\xe9"]\n')
    with pytest.raises(CatalogueError, match="not UTF-8"):
        read_catalogue(latin)
    good = tmp_path / "good.toml"
    good.write_text(
        'groups = ["g"]\n'
        'tags = [{ name = "x", group = "g", kind = "int", unit = "", text = "X" }]\n',
        encoding="utf-8",
    )
    assert read_catalogue(good).tag("x").dtype == np.dtype(np.int64)


names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@given(
    groups=st.lists(names, min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_valid_catalogues_round_trip_and_partition(groups: Any, data: st.DataObject) -> None:
    tag_names = data.draw(st.lists(names, min_size=len(groups), max_size=20, unique=True))
    # every group gets at least one tag, the rest are spread at random
    assigned = groups + [data.draw(st.sampled_from(groups)) for _ in tag_names[len(groups) :]]
    kinds = [data.draw(st.sampled_from(["float", "int", "bool"])) for _ in tag_names]
    entries = [tag(n, g, k) for n, g, k in zip(tag_names, assigned, kinds, strict=True)]
    catalogue = parse_catalogue({"groups": groups, "tags": entries})
    assert catalogue.names == tuple(tag_names)
    assert catalogue.groups == tuple(groups)
    for group in groups:
        members = catalogue.group_tags(group)
        assert members, group
        assert all(t.group == group for t in members)
        assert [t.index for t in members] == sorted(t.index for t in members)
    assert sum(len(catalogue.group_tags(g)) for g in groups) == len(tag_names)
