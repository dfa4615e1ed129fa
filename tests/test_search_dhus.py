"""DHuS search through sentinelsat against a DHuS-protocol server on loopback (real HTTP)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from conftest import REPO
from sentinelsat import SentinelAPI
from sentinelsat.exceptions import QuerySyntaxError

from eopack.aoi import load_aoi
from eopack.demo.dhusserver import DhusServer, compile_query, dhus_entries_from_demo
from eopack.demo.s1world import DemoProduct, build_s1_products
from eopack.demo.stacserver import free_port
from eopack.errors import EopackError
from eopack.search.dhus import (
    PASS_ENV,
    USER_ENV,
    entry_to_product,
    hub_credentials,
    s1_bucket_prefix,
    search_dhus,
)

AOI_DIR = REPO / "config" / "demo" / "aoi"
USER, PASSWORD = "hub-user", "pa55:W0rd-not-to-leak"
MARCH, JULY = ("2021-03-01", "2021-03-31"), ("2023-07-01", "2023-07-31")
# AOI, range -> sensing starts (field 5 of the product id) of the demo products to be found.
EXPECTED = {
    ("alps", *MARCH): ["20210310T053012"],
    ("alps", *JULY): ["20230714T052433", "20230726T172041"],
    ("rhine", *MARCH): ["20210310T053012"],
    ("rhine", *JULY): ["20230705T053450", "20230714T052433"],
    ("lisbon", *MARCH): ["20210315T183620", "20210322T183105"],
    ("lisbon", *JULY): ["20230719T063327"],
}


def sensing(product_id: str) -> str:
    return product_id.split("_")[4]


def aoi(name: str):
    return load_aoi(AOI_DIR / f"{name}.geojson").geometry


def refused(call, *args, **kwargs) -> str:
    """The EopackError message of a call; one line, and never the password."""
    with pytest.raises(EopackError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert PASSWORD not in message
    return message


@pytest.fixture(scope="module")
def demo() -> list[DemoProduct]:
    return build_s1_products()


@pytest.fixture(scope="module")
def server(demo) -> Iterator[DhusServer]:
    with DhusServer(dhus_entries_from_demo(demo), USER, PASSWORD) as started:
        yield started


@pytest.fixture
def hub(server) -> Iterator[DhusServer]:
    """The shared server with its switches reset and its request log cleared."""
    server.error, server.non_json, server.delay = None, None, 0.0
    server.requests.clear()
    yield server
    server.error, server.non_json, server.delay = None, None, 0.0


def get_feed(hub: DhusServer, **params: str) -> dict:
    resp = requests.get(f"{hub.url}search", params=params, auth=(USER, PASSWORD), timeout=10)
    assert resp.status_code == 200
    return resp.json()["feed"]


# --------------------------------------------------------------------------------------------
# Results over the demo world
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "start", "end"), sorted(EXPECTED))
def test_demo_results(hub, demo, name, start, end):
    found = search_dhus(hub.url, USER, PASSWORD, aoi(name), start, end, {})
    assert sorted(sensing(p.id) for p in found) == EXPECTED[(name, start, end)]
    by_id = {p.product_id: p for p in demo}
    for product in found:
        expected = by_id[product.id]  # the full ESA id, not the STAC item id
        props = expected.stac_item["properties"]
        assert product.prefix == expected.prefix
        assert product.bucket == "sentinel-s1-l1c"
        assert product.collection == "sentinel-1-grd"
        assert product.platform == props["platform"]
        assert product.mode == product.id.split("_")[1]
        assert list(product.polarisations) == props["sar:polarizations"]
        assert product.orbit_state == props["sat:orbit_state"]
        assert product.datetime == props["start_datetime"][:23] + "Z"
        assert product.geometry["type"] == "Polygon"
    # sentinelsat asked for every day of the range, whole
    assert (
        f'beginPosition:["{start}T00:00:00.000Z" TO "{end}T23:59:59.999Z"]' in hub.requests[0]["q"]
    )


def test_single_entry_is_an_object_and_end_day_is_inclusive(hub, demo):
    day = "2021-03-22"
    found = search_dhus(hub.url, USER, PASSWORD, aoi("lisbon"), day, day, {})
    assert [sensing(p.id) for p in found] == ["20210322T183105"]
    assert found[0].prefix == next(p.prefix for p in demo if p.product_id == found[0].id)
    # the same request, raw: DHuS's quirk of one entry as an object, not a list
    feed = get_feed(hub, **hub.requests[-1])
    assert feed["opensearch:totalResults"] == "1"
    assert isinstance(feed["entry"], dict)
    strings = {item["name"]: item["content"] for item in feed["entry"]["str"]}
    assert strings["identifier"] == found[0].id


def test_sentinelsat_own_dates_would_drop_the_end_day(hub):
    """Why date_range() exists: sentinelsat sends dates as that day's 00:00:00."""
    api = SentinelAPI(USER, PASSWORD, hub.url, show_progressbars=False)
    day = dt.date(2021, 3, 22)
    wkt = aoi("lisbon").wkt
    assert api.query(area=wkt, date=(day, day), producttype="GRD") == {}
    assert (
        'beginPosition:["2021-03-22T00:00:00Z" TO "2021-03-22T00:00:00Z"]'
        in (hub.requests[-1]["q"])
    )


def test_no_match_has_no_entry_key(hub):
    feed = get_feed(hub, format="json", rows="10", start="0", q="producttype:SLC")
    assert feed["opensearch:totalResults"] == "0"
    assert "entry" not in feed


# --------------------------------------------------------------------------------------------
# Paging
# --------------------------------------------------------------------------------------------


def synthetic_entries(demo_entry: dict, count: int) -> list[dict]:
    """``count`` copies of one demo product, one minute apart on 2021-03-11."""
    out = []
    for i in range(count):
        t0 = dt.datetime(2021, 3, 11, 5, 0, 0) + dt.timedelta(minutes=i)
        t1 = t0 + dt.timedelta(seconds=25)
        pid = f"S1A_IW_GRDH_1SDV_{t0:%Y%m%dT%H%M%S}_{t1:%Y%m%dT%H%M%S}_036950_0458FF_{i:04X}"
        out.append(
            {
                **demo_entry,
                "identifier": pid,
                "filename": f"{pid}.SAFE",
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, pid)),
                "beginposition": f"{t0:%Y-%m-%dT%H:%M:%S}.000Z",
                "endposition": f"{t1:%Y-%m-%dT%H:%M:%S}.000Z",
            }
        )
    return out


def test_paging_beyond_one_page(demo):
    entries = synthetic_entries(dhus_entries_from_demo(demo)[0], 130)
    with DhusServer(entries, USER, PASSWORD) as hub:
        found = search_dhus(hub.url, USER, PASSWORD, aoi("alps"), *MARCH, {})
        assert len(found) == 130
        assert {p.id for p in found} == {e["identifier"] for e in entries}
        assert hub.request_count == 2
        assert [r["start"] for r in hub.requests] == ["0", "100"]
        assert {r["rows"] for r in hub.requests} == {"100"}


def test_paging_with_small_pages(hub):
    found = search_dhus(hub.url, USER, PASSWORD, aoi("lisbon"), *MARCH, {}, page_size=1)
    assert sorted(sensing(p.id) for p in found) == EXPECTED[("lisbon", *MARCH)]
    assert hub.request_count == 2
    assert [(r["start"], r["rows"]) for r in hub.requests] == [("0", "1"), ("1", "1")]


# --------------------------------------------------------------------------------------------
# Filters: server-side keywords where DHuS has them, always client-side too
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dates", "filters", "expected", "in_query"),
    [
        ("alps", JULY, {"instrument_modes": ["IW"]}, ["20230726T172041"],
         '(sensoroperationalmode:"IW")'),
        ("lisbon", MARCH, {"instrument_modes": ["SM"]}, ["20210315T183620"],
         '(sensoroperationalmode:"SM")'),
        ("lisbon", MARCH, {"instrument_modes": ["S1"]}, ["20210315T183620"],
         '(sensoroperationalmode:"SM")'),
        ("rhine", MARCH, {"polarisations": ["VH"]}, ["20210310T053012"], None),
        ("rhine", JULY, {"polarisations": ["VH"]}, [], None),
        ("alps", JULY, {"orbit_states": ["descending"]}, ["20230714T052433"],
         '(orbitdirection:"DESCENDING")'),
        ("lisbon", MARCH, {"platforms": ["sentinel-1b"]}, ["20210322T183105"],
         'platformname:"Sentinel-1"'),
    ],
)  # fmt: skip
def test_filters(hub, name, dates, filters, expected, in_query):
    found = search_dhus(hub.url, USER, PASSWORD, aoi(name), *dates, filters)
    assert sorted(sensing(p.id) for p in found) == expected
    sent = hub.requests[-1]
    if in_query is None:  # polarisations: client-side only
        assert "polarisationmode" not in sent["q"]
        return
    assert in_query in sent["q"]
    if "platforms" not in filters:  # DHuS itself narrowed the answer (platforms: client-side)
        assert get_feed(hub, **sent)["opensearch:totalResults"] == str(len(expected))


def test_client_side_filter_applies_whatever_the_server_answers(hub):
    """A hub that ignores a keyword (or is a different DHuS version) cannot add products."""
    found = search_dhus(
        hub.url, USER, PASSWORD, aoi("rhine"), *JULY, {"polarisations": ["VV", "VH"]}
    )
    assert found == []  # 20230705 is VV only, 20230714 HH HV
    assert "polarisationmode" not in hub.requests[-1]["q"]  # polarisations: client-side only
    assert get_feed(hub, **hub.requests[-1])["opensearch:totalResults"] == "2"


# --------------------------------------------------------------------------------------------
# Errors: one line, what to do, never the password
# --------------------------------------------------------------------------------------------


def test_wrong_password(hub):
    message = refused(search_dhus, hub.url, USER, "wrong", aoi("alps"), *MARCH, {})
    assert message == (
        f"DHuS {hub.url}: authentication refused (check USER_SENTINEL_HUB / PASS_SENTINEL_HUB)"
    )


def test_password_not_in_message_when_the_server_echoes_it(hub):
    hub.error = (500, f"internal error for user {USER} with password {PASSWORD}")
    message = refused(search_dhus, hub.url, USER, PASSWORD, aoi("alps"), *MARCH, {})
    assert message.startswith(f"DHuS {hub.url}: search failed (HTTP 500: internal error")
    assert "***" in message


def test_error_feed(hub):
    hub.error = (500, "org.apache.solr.common.SolrException: Solr is down")
    message = refused(search_dhus, hub.url, USER, PASSWORD, aoi("alps"), *MARCH, {})
    assert message == (
        f"DHuS {hub.url}: search failed "
        "(HTTP 500: org.apache.solr.common.SolrException: Solr is down)"
    )


@pytest.mark.parametrize("status", [200, 503])
def test_not_json(hub, status):
    hub.non_json = status
    message = refused(search_dhus, hub.url, USER, PASSWORD, aoi("alps"), *MARCH, {})
    assert message.startswith(f"DHuS {hub.url}: search failed (HTTP {status}: ")
    assert "back soon" in message
    assert hub.request_count == (3 if status == 503 else 1)  # 503 is retried twice


def test_query_error_feed_is_what_sentinelsat_expects(hub):
    """DHuS answers a bad query with HTTP 200 and an error feed; sentinelsat raises on it."""
    api = SentinelAPI(USER, PASSWORD, hub.url, show_progressbars=False)
    with pytest.raises(QuerySyntaxError, match="undefined field xxx"):
        api.query(raw="xxx:yyy")


def test_unreachable():
    url = f"http://127.0.0.1:{free_port()}/"
    message = refused(search_dhus, url, USER, PASSWORD, aoi("alps"), *MARCH, {}, timeout=2)
    assert message.startswith(f"DHuS {url}: unreachable (")
    assert "refused" in message.lower()


def test_timeout(hub):
    hub.delay = 2.0
    message = refused(search_dhus, hub.url, USER, PASSWORD, aoi("alps"), *MARCH, {}, timeout=0.2)
    assert message == f"DHuS {hub.url}: unreachable (no answer within 0.2 s)"


def test_credentials_in_url_stay_out_of_messages(hub):
    url = hub.url.replace("http://", f"http://{USER}:{PASSWORD.replace(':', '%3A')}@")
    message = refused(search_dhus, url, USER, "wrong", aoi("alps"), *MARCH, {})
    assert message.startswith(f"DHuS {hub.url}: authentication refused")


def test_password_never_logged(hub, caplog):
    caplog.set_level(logging.DEBUG)
    search_dhus(hub.url, USER, PASSWORD, aoi("alps"), *JULY, {})
    with pytest.raises(EopackError):
        search_dhus(hub.url, USER, PASSWORD + "x", aoi("alps"), *JULY, {})
    assert caplog.text
    assert PASSWORD not in caplog.text


def test_bad_date():
    url, area = "http://127.0.0.1:9/", aoi("alps")
    message = refused(search_dhus, url, USER, PASSWORD, area, "2021-3-1", "2021-03-31", {})
    assert "'2021-3-1' is not a date (use YYYY-MM-DD)" in message


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


@pytest.fixture
def no_hub_env(monkeypatch):
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.delenv(PASS_ENV, raising=False)


def test_credentials_from_environment(no_hub_env, monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(f"{USER_ENV}=file-user\n{PASS_ENV}=file-pass\n")
    monkeypatch.setenv(USER_ENV, "env-user")
    monkeypatch.setenv(PASS_ENV, "env-pass")
    assert hub_credentials(tmp_path / ".env") == ("env-user", "env-pass")


def test_credentials_from_dotenv_file(no_hub_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f'# hub account\n{USER_ENV}=file-user\n{PASS_ENV}="p@ss word"\n')
    before = dict(os.environ)
    assert hub_credentials(env_file) == ("file-user", "p@ss word")
    assert dict(os.environ) == before  # read, not exported to every later job


def test_credentials_missing(no_hub_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"{USER_ENV}=only-user\n")
    for where in (env_file, tmp_path / "absent.env"):
        message = refused(hub_credentials, where)
        assert message == (
            "DHuS credentials missing: set USER_SENTINEL_HUB and PASS_SENTINEL_HUB "
            f"in the environment or in {where}"
        )


# --------------------------------------------------------------------------------------------
# Units: bucket prefix, entry normalisation, the server's query evaluation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_id", "prefix"),
    [
        (
            "S1A_IW_GRDH_1SDV_20210310T053012_20210310T053037_036932_04588A_24DB",
            "GRD/2021/3/10/IW/DV",
        ),
        (
            "S1A_S2_GRDH_1SDH_20141220T100437_20141220T100501_003801_0048A7_0135",
            "GRD/2014/12/20/S2/DH",
        ),
        (
            "S1B_EW_GRDM_1SSH_20191103T071537_20191103T071641_018763_0235D8_6E4A",
            "GRD/2019/11/3/EW/SH",
        ),
    ],
)
def test_s1_bucket_prefix(product_id, prefix):
    assert s1_bucket_prefix(product_id) == f"{prefix}/{product_id}"


def test_s1_bucket_prefix_of_every_demo_product(demo):
    for product in demo:
        assert s1_bucket_prefix(product.product_id) == product.prefix


@pytest.mark.parametrize(
    "bad", ["", "S2A_MSIL1C_20210310T101021_N0209_R022_T32TNS_20210310T121528", "S1A_IW_SLC__1SDV"]
)
def test_s1_bucket_prefix_refuses_other_ids(bad):
    assert "is not a Sentinel-1 GRD product id" in refused(s1_bucket_prefix, bad)


def test_entry_with_gml_footprint_only(demo):
    entry = dict(dhus_entries_from_demo(demo)[1])
    entry.pop("footprint")
    entry.pop("platformserialidentifier")
    entry["beginposition"] = dt.datetime(2021, 3, 22, 18, 31, 5, 123000)  # as sentinelsat parses
    product = entry_to_product(entry)
    assert product.platform == "sentinel-1b"  # from the id
    assert product.datetime == "2021-03-22T18:31:05.123Z"
    assert product.geometry == demo[1].footprint  # GML's lat,lon pairs read back as lon, lat


def test_server_query_language():
    products = [
        {"a": "VV VH", "n": 5, "beginposition": "2021-03-01T10:00:00.000Z"},
        {"a": "HH HV", "n": 7, "beginposition": "2021-03-02T00:00:00.000Z"},
    ]
    fields = {"a", "n", "beginposition"}

    def hits(q: str) -> list[int]:
        wanted = compile_query(q, fields)
        return [i for i, p in enumerate(products) if wanted(p)]

    assert hits('a:"VV VH"') == [0]
    assert hits("a:vh") == [0]
    assert hits("a:H*") == [1]
    assert hits("(a:VV OR a:HV) n:7") == [1]
    assert hits("NOT a:VV") == [1]
    assert hits("n:[5 TO 7}") == [0]
    assert hits('beginPosition:["2021-03-01T00:00:00Z" TO "2021-03-01T23:59:59.999Z"]') == [0]
    assert hits('beginposition:["2021-03-01T00:00:00Z" TO "2021-03-02T00:00:00Z"]') == [0, 1]
    assert hits("beginposition:{* TO 2021-03-02T00:00:00Z}") == [0]


def test_demo_hub_holds_every_demo_product(hub, demo):
    feed = get_feed(hub, format="json", rows="100", start="0", q="platformname:Sentinel-1")
    assert int(feed["opensearch:totalResults"]) == len(demo)
    assert len(feed["entry"]) == len(demo)


def test_run_search_with_the_dhus_backend(hub, tmp_path, monkeypatch, caplog):
    """The workflow's search step on backend dhus: manifest contract, credentials never logged."""
    import json

    from eopack.search import run_search

    monkeypatch.setenv("USER_SENTINEL_HUB", USER)
    monkeypatch.setenv("PASS_SENTINEL_HUB", PASSWORD)
    monkeypatch.setenv("EOPACK_DHUS_URL", hub.url)
    search = {"backend": "dhus", "dhus_url": "http://unused.invalid/", "images_limit": 10}
    out = tmp_path / "lisbon.geojson"
    with caplog.at_level(logging.DEBUG):
        kept = run_search(AOI_DIR / "lisbon.geojson", *MARCH, search, out)
    assert [sensing(p.id) for p in kept] == ["20210315T183620", "20210322T183105"]
    doc = json.loads(out.read_text())
    assert [f["properties"]["source"]["bucket"] for f in doc["features"]] == ["sentinel-s1-l1c"] * 2
    assert PASSWORD not in caplog.text and PASSWORD not in out.read_text()
    assert USER not in caplog.text and USER not in out.read_text()
    assert f"EOPACK_DHUS_URL={hub.url} overrides search.dhus_url (http://unused.invalid/)" in (
        caplog.text
    )
