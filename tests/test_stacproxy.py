"""QueryStacProxy: rustac behind a proxy that declares and applies the STAC query extension."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses

from eopack.demo.stacproxy import QUERY_CONFORMANCE, QueryStacProxy, item_matches
from eopack.demo.stacserver import StacServer

COLLECTION = "sentinel-1-grd"

# id: (platform, mode, orbit state, polarizations, cloud cover or None = property absent)
ITEMS: dict[str, tuple[str, str, str, list[str], int | None]] = {
    "s1a-iw-asc-0": ("sentinel-1a", "IW", "ascending", ["VV", "VH"], None),
    "s1a-ew-desc-1": ("sentinel-1a", "EW", "descending", ["HH", "HV"], None),
    "s1b-iw-desc-2": ("sentinel-1b", "IW", "descending", ["VV", "VH"], 20),
    "s1a-iw-desc-3": ("sentinel-1a", "IW", "descending", ["VV"], 5),
    "s1b-sm-asc-4": ("sentinel-1b", "SM", "ascending", ["HH"], 50),
}


def _item(n: int, item_id: str) -> dict[str, Any]:
    platform, mode, orbit, pols, cloud = ITEMS[item_id]
    lon, lat = 10.0 + n, 50.0
    props: dict[str, Any] = {
        "datetime": f"2024-01-0{n + 1}T06:00:00Z",
        "platform": platform,
        "constellation": "sentinel-1",
        "sar:instrument_mode": mode,
        "sat:orbit_state": orbit,
        "sar:polarizations": pols,
    }
    if cloud is not None:
        props["eo:cloud_cover"] = cloud
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": COLLECTION,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[lon, lat], [lon + 0.5, lat], [lon + 0.5, lat + 0.5], [lon, lat + 0.5], [lon, lat]]
            ],
        },
        "bbox": [lon, lat, lon + 0.5, lat + 0.5],
        "properties": props,
        "assets": {
            "vv": {"href": f"s3://demo-bucket/{item_id}/vv.tiff", "roles": ["data"]},
        },
        "links": [],
    }


@pytest.fixture(scope="module")
def stac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StacServer]:
    tmp = tmp_path_factory.mktemp("stacproxy")
    items = tmp / "items.json"
    features = [_item(n, item_id) for n, item_id in enumerate(ITEMS)]
    items.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with StacServer([items], log_file=tmp / "rustac.log") as server:
        yield server


@pytest.fixture(scope="module")
def module_proxy(stac: StacServer) -> Iterator[QueryStacProxy]:
    with QueryStacProxy(stac.url) as started:
        yield started


@pytest.fixture
def proxy(module_proxy: QueryStacProxy) -> QueryStacProxy:
    module_proxy.clear()
    return module_proxy


def _http(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def _hrefs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == "href" and isinstance(sub, str):
                yield sub
            else:
                yield from _hrefs(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _hrefs(sub)


def _ids(client: Client, **kwargs: Any) -> set[str]:
    return {item.id for item in client.search(collections=[COLLECTION], **kwargs).items()}


# -- why the proxy exists --------------------------------------------------------------------


def test_plain_rustac_does_not_declare_or_apply_query(stac: StacServer) -> None:
    client = Client.open(stac.url)
    assert client.conforms_to(ConformanceClasses.ITEM_SEARCH)
    assert not client.conforms_to(ConformanceClasses.QUERY)
    status, conformance = _http(f"{stac.url}/conformance")
    assert status == 200 and QUERY_CONFORMANCE not in conformance["conformsTo"]
    # ...and a query it is sent anyway silently empties the answer, instead of filtering it.
    status, page = _http(f"{stac.url}/search", {"query": {"platform": {"eq": "sentinel-1a"}}})
    assert status == 200 and page["features"] == []


# -- conformance -----------------------------------------------------------------------------


def test_proxy_declares_query(proxy: QueryStacProxy) -> None:
    client = Client.open(proxy.url)
    assert client.conforms_to(ConformanceClasses.QUERY)
    assert client.conforms_to(ConformanceClasses.ITEM_SEARCH)
    status, conformance = _http(f"{proxy.url}/conformance")
    assert status == 200
    assert QUERY_CONFORMANCE in conformance["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/core" in conformance["conformsTo"]
    status, landing = _http(f"{proxy.url}/")
    assert QUERY_CONFORMANCE in landing["conformsTo"]


# -- operators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"platform": {"eq": "sentinel-1a"}}, {"s1a-iw-asc-0", "s1a-ew-desc-1", "s1a-iw-desc-3"}),
        ({"platform": {"neq": "sentinel-1a"}}, {"s1b-iw-desc-2", "s1b-sm-asc-4"}),
        ({"eo:cloud_cover": {"lt": 20}}, {"s1a-iw-desc-3"}),
        ({"eo:cloud_cover": {"lte": 20}}, {"s1b-iw-desc-2", "s1a-iw-desc-3"}),
        ({"eo:cloud_cover": {"gt": 5}}, {"s1b-iw-desc-2", "s1b-sm-asc-4"}),
        ({"eo:cloud_cover": {"gte": 5}}, {"s1b-iw-desc-2", "s1a-iw-desc-3", "s1b-sm-asc-4"}),
        ({"eo:cloud_cover": {"gte": 5, "lte": 20}}, {"s1b-iw-desc-2", "s1a-iw-desc-3"}),
        ({"eo:cloud_cover": {"neq": 5}}, {"s1b-iw-desc-2", "s1b-sm-asc-4"}),  # absent: no match
        ({"sar:instrument_mode": {"in": ["EW", "SM"]}}, {"s1a-ew-desc-1", "s1b-sm-asc-4"}),
        ({"platform": {"startsWith": "sentinel-1"}}, set(ITEMS)),
        ({"platform": {"endsWith": "1b"}}, {"s1b-iw-desc-2", "s1b-sm-asc-4"}),
        ({"sat:orbit_state": {"contains": "asc"}}, {"s1a-iw-asc-0", "s1b-sm-asc-4"}),
        (
            {"datetime": {"gte": "2024-01-03T00:00:00Z"}},
            {"s1b-iw-desc-2", "s1a-iw-desc-3", "s1b-sm-asc-4"},
        ),
        # array property: scalar eq = contains, array eq = equals, in = overlaps
        ({"sar:polarizations": {"eq": "VH"}}, {"s1a-iw-asc-0", "s1b-iw-desc-2"}),
        ({"sar:polarizations": {"eq": ["VV"]}}, {"s1a-iw-desc-3"}),
        ({"sar:polarizations": {"neq": "VV"}}, {"s1a-ew-desc-1", "s1b-sm-asc-4"}),
        (
            {"sar:polarizations": {"in": ["HV", "VH"]}},
            {"s1a-iw-asc-0", "s1a-ew-desc-1", "s1b-iw-desc-2"},
        ),
        ({"sar:polarizations": {"contains": "HH"}}, {"s1a-ew-desc-1", "s1b-sm-asc-4"}),
        (
            {"platform": {"eq": "sentinel-1a"}, "sat:orbit_state": {"eq": "descending"}},
            {"s1a-ew-desc-1", "s1a-iw-desc-3"},
        ),
        ({"properties.sar:instrument_mode": {"eq": "SM"}}, {"s1b-sm-asc-4"}),
        ({"no:such_property": {"neq": "x"}}, set()),
        ({"platform": {"eq": "sentinel-1c"}}, set()),
    ],
)
def test_query_operators(proxy: QueryStacProxy, query: dict[str, Any], expected: set[str]) -> None:
    client = Client.open(proxy.url)
    assert _ids(client, query=query) == expected
    assert proxy.searches()[0].query == query


def test_item_matches_is_type_strict() -> None:
    item = {"properties": {"flag": True, "n": 1, "s": "1", "none": None}}
    assert item_matches(item, {"flag": {"eq": True}})
    assert not item_matches(item, {"n": {"eq": True}})
    assert item_matches(item, {"n": {"eq": 1.0}})
    assert not item_matches(item, {"s": {"eq": 1}})
    assert not item_matches(item, {"s": {"lt": 2}})  # string vs number: no order
    assert not item_matches(item, {"none": {"gt": 0}})
    assert item_matches(item, {"none": {"eq": None}})


# -- paging ----------------------------------------------------------------------------------


def test_post_paging_filters_every_page(proxy: QueryStacProxy) -> None:
    client = Client.open(proxy.url)
    query = {"platform": {"eq": "sentinel-1a"}}
    search = client.search(collections=[COLLECTION], query=query, limit=1, method="POST")
    pages = list(search.pages_as_dicts())
    ids = [f["id"] for page in pages for f in page["features"]]
    assert sorted(ids) == ["s1a-ew-desc-1", "s1a-iw-asc-0", "s1a-iw-desc-3"]
    assert all(len(page["features"]) == 1 for page in pages)
    assert all("numberMatched" not in page for page in pages)
    assert all(page["numberReturned"] == 1 for page in pages)
    searches = proxy.searches()
    assert all(s.method == "POST" and s.query == query for s in searches)
    # rustac pages with a `skip` in the next body. The proxy read upstream's skip=3 page itself
    # when skip=2 had no match; the request for skip=4 got the final, empty, page.
    assert [s.params.get("skip") for s in searches] == [None, 1, 2, 4]


def test_paging_skips_upstream_pages_without_matches(proxy: QueryStacProxy) -> None:
    # Only the last two (of five) items match: upstream pages 1-3 filter to nothing, which
    # would stop pystac-client; the proxy reads on until a page has a match.
    client = Client.open(proxy.url)
    query = {"eo:cloud_cover": {"gte": 5}, "platform": {"neq": "sentinel-1b"}}
    assert _ids(client, query=query, limit=1) == {"s1a-iw-desc-3"}
    query = {"sar:instrument_mode": {"eq": "SM"}}
    assert _ids(client, query=query, limit=1) == {"s1b-sm-asc-4"}
    assert _ids(client, query={"platform": {"eq": "nope"}}, limit=1) == set()


def test_get_search_with_query_pages_and_filters(proxy: QueryStacProxy) -> None:
    client = Client.open(proxy.url)
    query = {"sar:polarizations": {"eq": "VV"}}
    # rustac answers GET /search?limit=..&collections=.. with 500 "unsupported value":
    # no collections here.
    search = client.search(query=query, limit=1, method="GET")
    ids = {item.id for item in search.items()}
    assert ids == {"s1a-iw-asc-0", "s1b-iw-desc-2", "s1a-iw-desc-3"}
    searches = proxy.searches()
    assert len(searches) >= 3
    assert all(s.method == "GET" and s.query == query for s in searches)
    assert all("query=" in s.query_string for s in searches)


# -- hrefs and links -------------------------------------------------------------------------


def test_hrefs_point_at_the_proxy(proxy: QueryStacProxy, stac: StacServer) -> None:
    query = {"platform": {"eq": "sentinel-1a"}}
    status, page = _http(f"{proxy.url}/search", {"limit": 1, "query": query})
    assert status == 200
    hrefs = list(_hrefs(page))
    assert hrefs
    assert not [h for h in hrefs if h.startswith(stac.url)]
    web = [h for h in hrefs if h.startswith("http")]
    assert web and all(h.startswith(proxy.url + "/") for h in web)
    assert any(h.startswith("s3://demo-bucket/") for h in hrefs)  # asset hrefs untouched
    nxt = next(link for link in page["links"] if link["rel"] == "next")
    assert nxt["href"] == f"{proxy.url}/search"
    assert nxt["method"] == "POST"
    assert nxt["body"]["query"] == query and nxt["body"]["limit"] == 1

    for path in ("/", "/collections", f"/collections/{COLLECTION}/items?limit=1"):
        status, doc = _http(proxy.url + path)
        assert status == 200
        web = [h for h in _hrefs(doc) if h.startswith("http")]
        assert web and all(h.startswith(proxy.url + "/") for h in web), path

    client = Client.open(proxy.url)
    item = next(client.search(collections=[COLLECTION], query=query, max_items=1).items())
    assert (item.get_self_href() or "").startswith(proxy.url + "/")


def test_get_next_link_carries_query(proxy: QueryStacProxy) -> None:
    query = {"sar:instrument_mode": {"eq": "IW"}}
    encoded = urllib.request.quote(json.dumps(query))
    status, page = _http(f"{proxy.url}/search?limit=1&query={encoded}")
    assert status == 200 and [f["id"] for f in page["features"]] == ["s1a-iw-asc-0"]
    nxt = next(link for link in page["links"] if link["rel"] == "next")
    assert nxt["href"].startswith(f"{proxy.url}/search?")
    status, page2 = _http(nxt["href"])
    assert status == 200 and [f["id"] for f in page2["features"]] == ["s1b-iw-desc-2"]
    assert proxy.searches()[1].query == query


# -- pass-through and errors -----------------------------------------------------------------


def test_search_without_query_is_passed_through(proxy: QueryStacProxy) -> None:
    client = Client.open(proxy.url)
    assert _ids(client) == set(ITEMS)
    assert proxy.searches()[0].query is None


@pytest.mark.parametrize(
    "query",
    [
        {"platform": {"like": "sentinel%"}},
        {"platform": "sentinel-1a"},
        {"sar:instrument_mode": {"in": "IW"}},
        ["platform"],
    ],
)
def test_malformed_query_is_400(proxy: QueryStacProxy, query: Any) -> None:
    status, doc = _http(f"{proxy.url}/search", {"query": query})
    assert status == 400 and doc["code"] == "BadRequest"
    assert proxy.searches()[0].params["query"] == query


def test_get_query_not_json_is_400(proxy: QueryStacProxy) -> None:
    status, doc = _http(f"{proxy.url}/search?query=platform%3Dsentinel-1a")
    assert status == 400 and "not JSON" in doc["description"]


def test_upstream_errors_are_passed_through(proxy: QueryStacProxy) -> None:
    status, _ = _http(f"{proxy.url}/collections/no-such-collection")
    assert status == 404
    status, _ = _http(f"{proxy.url}/nope")
    assert status == 404
