"""Bad input, end to end: the catalogue. Each mistake stops the real workflow with one line
naming the culprit, and every good file of the finished run it was made on is kept.

Every case starts from a copy of a workflow folder where the demo has already run to the end
(:func:`finished`), changes one thing (a config key, an AOI file, a STAC answer, an object in a
source bucket, an archive or metadata file of the BigEarthNet source, a destination, a
publish setting), runs the command a user would, and asserts

* exit status != 0, no traceback;
* exactly one ``eopack: ...`` line on the console, the exact message (a message ending in
  ``…`` is a prefix: its tail quotes a library's words);
* where it was stopped: while Snakemake reads the workflow (config, AOI, BigEarthNet metadata:
  no DAG), before any job (``onstart``), or in one job (one ``FAILED <rule> ...; log: <path>``
  line, the job's log holding the same message as its ``ERROR`` record);
* every file of the finished run (under ``results/`` but ``urls.tsv``, and under
  ``resources/``) is byte for byte what it was.

A case that shows a defect not fixed yet is ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import DemoRun, result_hashes, run_snakemake
from werkzeug.wrappers import Response

from eopack.demo import benworld
from eopack.demo.benworld import build_benworld
from eopack.demo.dhusserver import DhusServer, dhus_entries_from_demo
from eopack.demo.s1world import DEMO_BUCKET
from eopack.demo.stacproxy import QueryStacProxy
from eopack.demo.stacserver import free_port
from eopack.demo.world import BIGEARTHNET_BUCKET, BIGEARTHNET_PREFIX, DemoWorld

HUB_USER, HUB_PASSWORD, WRONG_PASSWORD = "hub-user", "hub-secret-Pa55", "wrong-Pa55"
AOI_DIR = "config/demo/aoi"  # aoi_dir of config/demo.yaml, relative to the workdir
MARCH = "results/search/alps/2021-03-01_2021-03-31.geojson"
SQUARE = [[[8.0, 47.0], [9.0, 47.0], [9.0, 48.0], [8.0, 48.0], [8.0, 47.0]]]
BOW_TIE = [[[8.0, 47.0], [9.0, 48.0], [9.0, 47.0], [8.0, 48.0], [8.0, 47.0]]]
UTM_SQUARE = [[[400e3, 5e6], [500e3, 5e6], [500e3, 5.1e6], [400e3, 5.1e6], [400e3, 5e6]]]  # metres
#: The product whose SAFE the bucket-content cases rebuild (the first one of the demo search).
PRODUCT = "S1A_IW_GRDH_1SDV_20210310T053012_20210310T053037_036932_04588A_24DB"
PRODUCT_PREFIX = f"GRD/2021/3/10/IW/DV/{PRODUCT}"
SRC = f"s3://{DEMO_BUCKET}/{PRODUCT_PREFIX}"  # {src} in messages
ANNOTATION = "annotation/iw-vv.xml"  # its name in the bucket (renamed in the SAFE)
STAC_ID = PRODUCT.rsplit("_", 1)[0]  # its STAC item id
# A Sentinel-2 L2A product (baseline 05.09) and a Landsat scene of the demo world.
S2 = "S2B_MSIL2A_20230731T113319_N0509_R080_T29SMC_20230731T152725"
S2_BUCKET = "sentinel-s2-l2a"
S2_PRODUCT_PREFIX = f"products/2023/7/31/{S2}"
S2_TILE_PREFIX = "tiles/29/S/MC/2023/7/31/0"
SCENE = "LC09_L2SP_204033_20230730_20230801_02_T1"
SCENE_PREFIX = f"collection02/level-2/standard/oli-tirs/2023/204/033/{SCENE}"
BEN = "resources/bigearthnet"

#: Where each case is stopped: while Snakemake reads the workflow, in onstart, in a job.
PRE, START = "pre-flight", "onstart"


def in_job(rule: str) -> str:
    return f"job {rule}"


@dataclass
class Setup:
    """One case: its workflow copy, the config to run with (demo.yaml's, to be mutated), the
    targets and ``--forcerun`` rules of the command, extra environment, and what to undo on
    the shared demo world afterwards."""

    workdir: Path
    config: dict[str, Any]
    world: DemoWorld
    hub_url: str
    tmp: Path
    dead_url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")
    env: dict[str, str] = field(default_factory=lambda: {"EOPACK_DHUS_URL": ""})
    targets: list[str] = field(default_factory=list)
    forcerun: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # more {placeholders} of the message
    undo: list[Callable[[], object]] = field(default_factory=list)

    @property
    def search(self) -> dict[str, Any]:
        return self.config["search"]

    @property
    def ben(self) -> dict[str, Any]:
        return self.config["bigearthnet"]

    # -- AOI files ---------------------------------------------------------------------------

    def write_aoi(self, name: str, doc: Any) -> None:
        """Add ``{name}.geojson`` to the demo AOI folder (a str is written as is)."""
        text = doc if isinstance(doc, str) else json.dumps(doc)
        (self.workdir / AOI_DIR / f"{name}.geojson").write_text(text, encoding="utf-8")

    def clear_aois(self) -> None:
        for path in (self.workdir / AOI_DIR).glob("*.geojson"):
            path.unlink()

    # -- search ------------------------------------------------------------------------------

    def research(self) -> None:
        """Search March again (``--forcerun search``, that manifest as the target)."""
        self.targets, self.forcerun = [MARCH], ["search"]

    def dhus(self, user: str, password: str) -> None:
        """Search March again on the test hub with these credentials."""
        self.research()
        self.search.update(backend="dhus", dhus_url=self.hub_url, collections=["sentinel-1-grd"])
        self.env.update(USER_SENTINEL_HUB=user, PASS_SENTINEL_HUB=password)

    def stac_answers(self, spoil: Callable[[Response], Response]) -> None:
        """Search March again on the demo STAC API whose ``/search`` answers are spoilt."""
        assert self.world.stac is not None
        proxy = SpoiltStac(self.world.stac.url, spoil).start()
        self.undo.append(proxy.stop)
        self.research()
        self.search.update(timeout_s=5)
        self.env["EOPACK_STAC_URL"] = self.names["stac"] = proxy.url

    # -- objects on the demo S3 server -------------------------------------------------------

    def replace_object(self, bucket: str, key: str, body: bytes | None) -> None:
        """Put ``body`` at ``key`` (None: delete it); the old object is put back afterwards."""
        client, paid = self.world.client(), {"RequestPayer": "requester"}
        old = client.get_object(Bucket=bucket, Key=key, **paid)["Body"].read()
        self.undo.append(lambda: client.put_object(Bucket=bucket, Key=key, Body=old, **paid))
        if body is None:
            client.delete_object(Bucket=bucket, Key=key, **paid)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=body, **paid)

    def product_file(self, name: str, body: bytes | None) -> None:
        """Change one file of PRODUCT in the source bucket, then rebuild and verify its SAFE."""
        self.replace_object(DEMO_BUCKET, f"{PRODUCT_PREFIX}/{name}", body)
        self.targets, self.forcerun = [f"results/safe/{PRODUCT}.verify.json"], ["rebuild_safe"]

    def optical_object(self, bucket: str, key: str, product: str, body: bytes | None) -> None:
        """Change one object of an optical product, then rebuild and verify it."""
        self.replace_object(bucket, key, body)
        self.targets, self.forcerun = [f"results/safe/{product}.verify.json"], ["rebuild_safe"]

    def object_bytes(self, bucket: str, key: str) -> bytes:
        got = self.world.client().get_object(Bucket=bucket, Key=key, RequestPayer="requester")
        return got["Body"].read()

    def s2_product_info(self, edit: Callable[[dict[str, Any]], object]) -> None:
        """Rebuild S2 from a bucket whose productInfo.json is ``edit``ed."""
        key = f"{S2_PRODUCT_PREFIX}/productInfo.json"
        doc = json.loads(self.object_bytes(S2_BUCKET, key))
        edit(doc)
        self.optical_object(S2_BUCKET, key, S2, json.dumps(doc).encode())

    def s2_manifest_granule(self, old: str, new: str) -> None:
        """Rebuild S2 from a bucket whose manifest.safe names granule folder ``new``."""
        key = f"{S2_PRODUCT_PREFIX}/manifest.safe"
        body = self.object_bytes(S2_BUCKET, key).replace(old.encode(), new.encode())
        self.optical_object(S2_BUCKET, key, S2, body)

    def product_bytes(self, name: str) -> bytes:
        key = f"{PRODUCT_PREFIX}/{name}"
        got = self.world.client().get_object(Bucket=DEMO_BUCKET, Key=key, RequestPayer="requester")
        return got["Body"].read()

    def new_bucket(self, read_only: bool = False) -> str:
        """A fresh bucket of this case (``{bucket}`` in the message)."""
        name = f"bad-{self.tmp.name.lower().replace('_', '-')[-40:].strip('-')}"
        self.world.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        if read_only:
            self.world.s3.set_read_only(name)
            self.undo.append(lambda: self.world.s3.set_read_only(name, False))
        self.names["bucket"] = name
        return name

    # -- the BigEarthNet source --------------------------------------------------------------

    def release_copy(self, change: Callable[[dict[str, bytes]], object]) -> None:
        """Use a copy of the demo release under a prefix of its own, ``change``d (name ->
        bytes; hashes.txt is rewritten with the md5s of the changed files unless ``change``
        sets it)."""
        assert self.world.benworld is not None
        files = {n: Path(p).read_bytes() for n, p in self.world.benworld.files.items()}
        original = dict(files)
        change(files)
        if files.get(benworld.HASHES) == original[benworld.HASHES]:
            files[benworld.HASHES] = hashes_txt(files)
        prefix = f"{BIGEARTHNET_PREFIX}-{self.tmp.name}"
        client = self.world.client()
        for name, body in files.items():
            client.put_object(Bucket=BIGEARTHNET_BUCKET, Key=f"{prefix}/{name}", Body=body)
        self.ben["source"] = self.names["source"] = f"s3://{BIGEARTHNET_BUCKET}/{prefix}"

    def release_folder(self, *flaws: str) -> None:
        """A small flawed release (eopack.demo.benworld) in a local folder as the source."""
        flawed = build_benworld(
            self.tmp / "release", s2_products=2, patches_per_product=4, s1=False, flaws=flaws
        )
        self.ben["source"] = self.names["source"] = str(flawed.root)


def hashes_txt(files: dict[str, bytes]) -> bytes:
    lines = [
        f"{hashlib.md5(body).hexdigest()}  {name}\n"
        for name, body in sorted(files.items())
        if name != benworld.HASHES
    ]
    return "".join(lines).encode()


def wrong_md5(s: Setup, name: str, md5: str) -> None:
    """Give ``name`` a wrong md5 in the config (``{got}``: its true one)."""
    md5s = release_md5s(s.world)
    s.names["got"] = md5s[name]
    s.ben.update(hashes=None, md5s={**md5s, name: md5})


def release_md5s(world: DemoWorld) -> dict[str, str]:
    assert world.benworld is not None
    return {
        name: hashlib.md5(Path(path).read_bytes()).hexdigest()
        for name, path in world.benworld.files.items()
        if name != benworld.HASHES
    }


def parquet_without(body: bytes, column: str) -> bytes:
    table = pq.read_table(io.BytesIO(body))
    out = io.BytesIO()
    pq.write_table(table.drop_columns([column]), out)
    return out.getvalue()


class SpoiltStac(QueryStacProxy):
    """The demo STAC API with its ``/search`` answers spoilt (a server misbehaving)."""

    def __init__(self, upstream: str, spoil: Callable[[Response], Response]) -> None:
        super().__init__(upstream)
        self.spoil = spoil

    def _search(self, *args: Any) -> Response:
        return self.spoil(super()._search(*args))


def features_edited(edit: Callable[[dict[str, Any]], object]) -> Callable[[Response], Response]:
    """A spoiler that applies ``edit`` to every feature of a search page."""

    def spoil(response: Response) -> Response:
        page = json.loads(response.get_data())
        for feature in page.get("features", []):
            edit(feature)
        response.set_data(json.dumps(page).encode())
        return response

    return spoil


def answer(status: int, body: bytes) -> Callable[[Response], Response]:
    return lambda _: Response(body, status=status, mimetype="application/geo+json")


def strip_assets(feature: dict[str, Any]) -> None:
    feature["assets"] = {}
    feature["properties"].pop("earthsearch:s3_path", None)


Mutate = Callable[[Setup], object]


def case(mutate: Mutate, message: str, stage: str, *, id: str, xfail: str = "") -> Any:
    """A table row; ``message`` may name ``{hub}``, ``{dead}``, ``{stac}``, ``{src}``,
    ``{bucket}``, ``{source}`` (known at run time); ``xfail``: a defect's description."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(mutate, message, stage, id=id, marks=marks)


CASES = [
    # ---- AOI files and folder ------------------------------------------------------------
    case(
        lambda s: s.write_aoi("broken", '{"type": "Polygon", "coordinates": [[[8, 47],'),
        f"eopack: {AOI_DIR}/broken.geojson: not valid JSON (line 1: Expecting value)",
        PRE,
        id="aoi-not-json",
    ),
    case(
        lambda s: s.write_aoi("well", {"type": "Point", "coordinates": [8.0, 47.0]}),
        f"eopack: {AOI_DIR}/well.geojson: geometry type Point is not an area "
        "(use Polygon or MultiPolygon)",
        PRE,
        id="aoi-point",
    ),
    case(
        lambda s: s.write_aoi(
            "road", {"type": "LineString", "coordinates": [[8.0, 47.0], [9.0, 48.0]]}
        ),
        f"eopack: {AOI_DIR}/road.geojson: geometry type LineString is not an area "
        "(use Polygon or MultiPolygon)",
        PRE,
        id="aoi-linestring",
    ),
    case(
        lambda s: s.write_aoi("bowtie", {"type": "Polygon", "coordinates": BOW_TIE}),
        f"eopack: {AOI_DIR}/bowtie.geojson: invalid geometry (Self-intersection[8.5 47.5])",
        PRE,
        id="aoi-bow-tie",
    ),
    case(
        lambda s: s.write_aoi("none", {"type": "FeatureCollection", "features": []}),
        f"eopack: {AOI_DIR}/none.geojson: FeatureCollection has no features",
        PRE,
        id="aoi-no-features",
    ),
    case(
        lambda s: s.write_aoi("bare", {"type": "Feature", "properties": {}, "geometry": None}),
        f"eopack: {AOI_DIR}/bare.geojson: Feature has no geometry",
        PRE,
        id="aoi-feature-without-geometry",
    ),
    case(
        lambda s: s.write_aoi("utm", {"type": "Polygon", "coordinates": UTM_SQUARE}),
        f"eopack: {AOI_DIR}/utm.geojson: coordinates outside lon/lat range (expected EPSG:4326)",
        PRE,
        id="aoi-projected-coordinates",
    ),
    case(
        lambda s: s.write_aoi("my aoi", {"type": "Polygon", "coordinates": SQUARE}),
        f"eopack: {AOI_DIR}/my aoi.geojson: AOI name 'my aoi' must be letters, digits, '_' or '-' "
        "(it becomes part of output paths)",
        PRE,
        id="aoi-unsafe-name",
    ),
    case(
        lambda s: s.clear_aois(),
        f"eopack: config: aoi_dir: folder {AOI_DIR} holds no *.geojson file",
        PRE,
        id="aoi-folder-empty",
    ),
    case(
        lambda s: s.config.update(aoi_dir="config/no-such-aoi"),
        "eopack: config: aoi_dir: folder config/no-such-aoi does not exist",
        PRE,
        id="aoi-folder-missing",
    ),
    # ---- Date ranges ---------------------------------------------------------------------
    case(
        lambda s: s.config.update(date_ranges=[["2021-03-31", "2021-03-01"]]),
        "eopack: config: date_ranges[0]: end 2021-03-01 is before start 2021-03-31",
        PRE,
        id="date-end-before-start",
    ),
    case(
        lambda s: s.config.update(date_ranges=[["2021-02-01", "2021-02-30"]]),
        "eopack: config: date_ranges[0][1]: '2021-02-30' is not an ISO date (YYYY-MM-DD)",
        PRE,
        id="date-impossible",
    ),
    case(
        lambda s: s.config.update(date_ranges=[["03/01/2021", "2021-03-31"]]),
        "eopack: config: date_ranges[0][0]: '03/01/2021' is not an ISO date (YYYY-MM-DD)",
        PRE,
        id="date-not-iso",
    ),
    case(
        lambda s: s.config.update(date_ranges=[]),
        "eopack: config: date_ranges: [] should be non-empty",
        PRE,
        id="date-ranges-empty",
    ),
    case(
        lambda s: s.config.update(date_ranges=[["2021-03-01", "2021-03-31", "2021-04-30"]]),
        "eopack: config: date_ranges[0]: ['2021-03-01', '2021-03-31', '2021-04-30'] is too long",
        PRE,
        id="date-range-three-dates",
    ),
    case(
        # Unquoted in YAML, a date is a date, not a string.
        lambda s: s.config.update(date_ranges=["2021-03-01"]),
        "eopack: config: date_ranges[0]: '2021-03-01' is not of type 'array'",
        PRE,
        id="date-range-not-a-pair",
    ),
    # ---- Backend and other config --------------------------------------------------------
    case(
        lambda s: s.search.update(backend="ftp"),
        "eopack: config: search.backend: 'ftp' is not one of ['stac', 'dhus']",
        PRE,
        id="backend-unknown",
    ),
    case(
        lambda s: s.search.update(backend="dhus"),
        "eopack: config: search.dhus_url: required when search.backend is dhus",
        PRE,
        id="backend-dhus-without-url",
    ),
    case(
        lambda s: s.search.update(timeout=5),
        "eopack: config: search: unknown key 'timeout' (known keys: backend, collections, "
        "dhus_url, "
        "filters, images_limit, server_filters, stac_url, timeout_s)",
        PRE,
        id="config-unknown-search-key",
    ),
    case(
        lambda s: s.config.update(date_range=[["2021-03-01", "2021-03-31"]]),
        "eopack: config: unknown key 'date_range' (known keys: aoi_dir, bigearthnet, date_ranges, "
        "destination, plan, publish, report, search, sources, transfer, verify, zip)",
        PRE,
        id="config-unknown-top-key",
    ),
    case(
        lambda s: s.search.update(collections=["sentinel-1-grd", "sentinel-9-xyz"]),
        "eopack: config: search.collections[1]: 'sentinel-9-xyz' is not one of ['sentinel-1-grd', "
        "'sentinel-2-l1c', 'sentinel-2-l2a', 'landsat-c2-l2']",
        PRE,
        id="collection-unknown",
    ),
    case(
        lambda s: s.search.update(
            backend="dhus", dhus_url=s.hub_url, collections=["sentinel-2-l2a"]
        ),
        "eopack: config: search.collections: sentinel-2-l2a not available from a DHuS hub (backend "
        "dhus searches sentinel-1-grd only; use backend stac)",
        PRE,
        id="backend-dhus-optical-collection",
    ),
    case(
        lambda s: (
            s.research(),
            s.search.update(timeout_s=1),
            s.env.update(EOPACK_STAC_URL=s.dead_url),
        ),
        "eopack: STAC API {dead}: unreachable or not a STAC API (connection refused)",
        in_job("search"),
        id="stac-unreachable",
    ),
    case(
        lambda s: s.dhus(HUB_USER, WRONG_PASSWORD),
        "eopack: DHuS {hub}: authentication refused (check USER_SENTINEL_HUB / PASS_SENTINEL_HUB)",
        in_job("search"),
        id="dhus-auth-refused",
    ),
    case(
        lambda s: s.dhus("", ""),
        "eopack: DHuS credentials missing: set USER_SENTINEL_HUB and PASS_SENTINEL_HUB in the "
        "environment or in .env",
        in_job("search"),
        id="dhus-credentials-missing",
    ),
    # ---- Config: types, ranges, unknown keys ----------------------------------------------
    case(
        lambda s: s.search.update(images_limit="ten"),
        "eopack: config: search.images_limit: 'ten' is not of type 'integer', 'null'",
        PRE,
        id="config-type-images-limit",
    ),
    case(
        lambda s: s.config["transfer"].update(max_workers=0),
        "eopack: config: transfer.max_workers: 0 is less than the minimum of 1",
        PRE,
        id="config-range-max-workers",
    ),
    case(
        lambda s: s.config.update(zip={"deflate_level": 10}),
        "eopack: config: zip.deflate_level: 10 is greater than the maximum of 9",
        PRE,
        id="config-range-deflate-level",
    ),
    case(
        lambda s: s.config.update(verify={"on_failure": "ignore"}),
        "eopack: config: verify.on_failure: 'ignore' is not one of ['fail', 'warn']",
        PRE,
        id="config-verify-on-failure-unknown",
    ),
    case(
        lambda s: s.config.update(report={"enabled": "maybe"}),
        "eopack: config: report.enabled: 'maybe' is not of type 'boolean'",
        PRE,
        id="config-type-report-enabled",
    ),
    case(
        lambda s: s.config.update(plan={"usd_per_gb": -1}),
        "eopack: config: plan.usd_per_gb: -1 is less than the minimum of 0",
        PRE,
        id="config-range-plan-price",
    ),
    case(
        lambda s: s.config.update(destination={"bucket": "my-bucket"}),
        "eopack: config: destination: unknown key 'bucket' (known keys: copy_safe, stream_zip, "
        "uri)",
        PRE,
        id="config-unknown-destination-key",
    ),
    case(
        lambda s: s.config.update(search=5),
        "eopack: config: search: 5 is not of type 'object'",
        PRE,
        id="config-section-not-a-mapping",
    ),
    case(
        lambda s: s.ben.update(rgb_bands=["B04", "B03", "B99"]),
        "eopack: config: bigearthnet.rgb_bands[2]: 'B99' is not one of ['B01', 'B02', 'B03', "
        "'B04', "
        "'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12']",
        PRE,
        id="config-bigearthnet-band-unknown",
    ),
    case(
        lambda s: s.ben.update(splits=["train", "holdout"]),
        "eopack: config: bigearthnet.splits[1]: 'holdout' is not one of ['train', 'validation', "
        "'test']",
        PRE,
        id="config-bigearthnet-split-unknown",
    ),
    case(
        lambda s: s.config.update(sources={"sentinel-s1-l1c": {"region": 5}}),
        "eopack: config: sources.sentinel-s1-l1c.region: 5 is not of type 'string'",
        PRE,
        id="config-type-source-region",
    ),
    # ---- Search answers (STAC API misbehaving; the March manifest is searched again) ------
    case(
        lambda s: s.stac_answers(answer(200, b'{"type": "FeatureCollection", "features": [{')),
        "eopack: STAC API {stac}: search failed (an answer is not JSON: …)",
        in_job("search"),
        id="stac-broken-json",
    ),
    case(
        lambda s: s.stac_answers(answer(500, b'{"code": "InternalServerError"}')),
        "eopack: STAC API {stac}: search failed (…",
        in_job("search"),
        id="stac-http-500",
    ),
    case(
        lambda s: s.stac_answers(answer(200, b'{"type": "Feature"}')),
        "eopack: STAC API {stac}: search failed (an answer is not a FeatureCollection)",
        in_job("search"),
        id="stac-not-a-feature-collection",
    ),
    case(
        lambda s: s.stac_answers(features_edited(strip_assets)),
        f"eopack: STAC item {STAC_ID}: no s3:// location of its files",
        in_job("search"),
        id="stac-item-without-assets",
    ),
    case(
        lambda s: s.stac_answers(features_edited(lambda f: f.update(collection="sentinel-9"))),
        f"eopack: STAC item {STAC_ID}: collection 'sentinel-9' is not supported (supported: …",
        in_job("search"),
        id="stac-item-unknown-collection",
    ),
    case(
        lambda s: s.stac_answers(features_edited(lambda f: f.pop("geometry"))),
        f"eopack: STAC item {STAC_ID}: no geometry (its footprint is needed)",
        in_job("search"),
        id="stac-item-without-geometry",
    ),
    # ---- Bucket contents (the product's SAFE is rebuilt from the source bucket) ------------
    case(
        lambda s: s.product_file("manifest.safe", None),
        "eopack: {src}/manifest.safe: object not found",
        in_job("rebuild_safe"),
        id="bucket-manifest-missing",
    ),
    case(
        lambda s: s.product_file("productInfo.json", None),
        "eopack: {src}/productInfo.json: object not found",
        in_job("rebuild_safe"),
        id="bucket-product-info-missing",
    ),
    case(
        lambda s: s.product_file("productInfo.json", b'{"id": "x", "filenameMap": '),
        "eopack: {src}/productInfo.json: corrupt productInfo.json (…)",
        in_job("rebuild_safe"),
        id="bucket-product-info-corrupt",
    ),
    case(
        lambda s: s.product_file("measurement/iw-vh.tiff", None),
        "eopack: {src}/measurement/iw-vh.tiff: object not found",
        in_job("rebuild_safe"),
        id="bucket-listed-file-missing",
    ),
    case(
        lambda s: s.product_file("manifest.safe", b"<?xml version='1.0'?><xfdu:XFDU"),
        f"eopack: results/safe/.{PRODUCT}.SAFE.part/manifest.safe: cannot parse manifest.safe "
        "(…); nothing of an earlier run was changed",
        in_job("rebuild_safe"),
        id="bucket-manifest-corrupt",
    ),
    case(
        # A measurement TIFF may differ from the manifest (re-encoded in the bucket) if it
        # reads as a GeoTIFF; an annotation file may not.
        lambda s: s.product_file(ANNOTATION, s.product_bytes(ANNOTATION)[:-100]),
        f"eopack: verification failed: {PRODUCT}.SAFE/annotation/…: size … != manifest …; "
        "checked before the SAFE replaces anything: nothing of an earlier run was changed",
        in_job("rebuild_safe"),
        id="bucket-size-mismatch",
    ),
    case(
        lambda s: s.product_file(ANNOTATION, s.product_bytes(ANNOTATION).swapcase()),
        f"eopack: verification failed: {PRODUCT}.SAFE/annotation/…: MD5 … != manifest …; "
        "checked before the SAFE replaces anything: nothing of an earlier run was changed",
        in_job("rebuild_safe"),
        id="bucket-md5-mismatch",
    ),
    # Sentinel-2 (product + tile folders, read through productInfo/tileInfo/manifest.safe)
    case(
        lambda s: s.optical_object(S2_BUCKET, f"{S2_TILE_PREFIX}/R10m/B04.jp2", S2, None),
        f"eopack: s3://{S2_BUCKET}/{S2_TILE_PREFIX}/R10m/B04.jp2: object not found ({S2}.SAFE/"
        "GRANULE/…/IMG_DATA/R10m/…_B04_10m.jp2 of its manifest.safe): a missing tile or "
        "datastrip object",
        in_job("rebuild_safe"),
        id="bucket-s2-tile-object-missing",
    ),
    case(
        lambda s: s.optical_object(
            S2_BUCKET, f"{S2_PRODUCT_PREFIX}/datastrip/0/metadata.xml", S2, None
        ),
        f"eopack: s3://{S2_BUCKET}/{S2_PRODUCT_PREFIX}/datastrip/0/metadata.xml: object not "
        f"found ({S2}.SAFE/DATASTRIP/…/MTD_DS.xml of its manifest.safe): a missing tile or "
        "datastrip object",
        in_job("rebuild_safe"),
        id="bucket-s2-datastrip-object-missing",
    ),
    case(
        lambda s: s.s2_product_info(lambda d: d.update(name=S2.replace("T29SMC", "T29SMD"))),
        f"eopack: s3://{S2_BUCKET}/{S2_PRODUCT_PREFIX}/productInfo.json: names product "
        f"'{S2.replace('T29SMC', 'T29SMD')}', expected {S2}",
        in_job("rebuild_safe"),
        id="bucket-s2-product-info-names-another",
    ),
    case(
        lambda s: s.s2_manifest_granule(
            "L2A_T29SMC_A033425_20230731T113359", "L2A_T29SMC_A033425_20230731T113000"
        ),
        f"eopack: s3://{S2_BUCKET}/{S2_PRODUCT_PREFIX}/manifest.safe: granule folder "
        "GRANULE/L2A_T29SMC_A033425_20230731T113000/ is not accounted for by productInfo.json "
        f"(tiles: T29SMC {S2_TILE_PREFIX})",
        in_job("rebuild_safe"),
        id="bucket-s2-granule-not-in-metadata",
    ),
    # Landsat (the scene folder's listing and the STAC item's assets)
    case(
        lambda s: s.optical_object(
            "usgs-landsat", f"{SCENE_PREFIX}/{SCENE}_SR_B4.TIF", SCENE, None
        ),
        f"eopack: s3://usgs-landsat/{SCENE_PREFIX}/{SCENE}_SR_B4.TIF: not in the bucket, "
        "although the STAC item names it",
        in_job("rebuild_safe"),
        id="bucket-landsat-asset-missing",
    ),
    # ---- Archives (BigEarthNet) ------------------------------------------------------------
    case(
        lambda s: wrong_md5(s, benworld.REFERENCE_ARCHIVE, "0" * 32),
        f"eopack: Reference_Maps.tar.zst: md5 mismatch: expected {'0' * 32}, got {{got}} (from "
        f"s3://{BIGEARTHNET_BUCKET}/{BIGEARTHNET_PREFIX}/Reference_Maps.tar.zst); the download "
        "was discarded, run again to fetch it anew; kept in the cache: "
        f"{BEN}/cache/md5/{{got}}/Reference_Maps.tar.zst (… KB, md5 {{got}})",
        in_job("bigearthnet_fetch"),
        id="archive-md5-mismatch",
    ),
    case(
        lambda s: s.release_copy(
            lambda f: f.update({benworld.REFERENCE_ARCHIVE: f[benworld.REFERENCE_ARCHIVE][:-5000]})
        ),
        f"eopack: {BEN}/Reference_Maps.tar.zst: the archive ends inside member '…' after … bytes "
        "of tar data (… members read), without the tar end-of-archive block: the file is "
        "truncated or was written incompletely; fetch it again; kept in the cache: "
        f"{BEN}/cache/md5/…/extracted/maps/Reference_Maps",
        in_job("bigearthnet_extract"),
        id="archive-truncated",
    ),
    case(
        lambda s: s.release_folder("dotdot_member"),
        f"eopack: {BEN}/BigEarthNet-S2.tar.zst: member '…' points outside the destination "
        "('..'); this is not the archive we expect: refusing to extract; kept in the cache: "
        f"{BEN}/cache/md5/…/extracted/B02_B03_B04/BigEarthNet-S2",
        in_job("bigearthnet_extract"),
        id="archive-member-dotdot",
    ),
    case(
        lambda s: s.release_folder("symlink_member"),
        f"eopack: {BEN}/BigEarthNet-S2.tar.zst: member '…' is a symbolic link to '/etc/passwd'; "
        "a dataset archive holds only regular files and folders, so this is not the archive we "
        "expect: refusing to extract; kept in the cache: "
        f"{BEN}/cache/md5/…/extracted/B02_B03_B04/BigEarthNet-S2",
        in_job("bigearthnet_extract"),
        id="archive-member-symlink",
    ),
    # ---- Metadata (BigEarthNet; read while Snakemake builds the DAG) -----------------------
    case(
        lambda s: s.release_copy(
            lambda f: f.update({benworld.METADATA: parquet_without(f[benworld.METADATA], "labels")})
        ),
        f"eopack: {BEN}/metadata.parquet: …",
        PRE,
        id="metadata-without-labels-column",
    ),
    case(
        lambda s: s.release_copy(lambda f: f.update({benworld.METADATA: b"PAR1 not a parquet"})),
        f"eopack: {BEN}/metadata.parquet: not a readable BigEarthNet metadata parquet (…",
        PRE,
        id="metadata-not-a-parquet",
    ),
    case(
        lambda s: s.release_copy(lambda f: f.pop(benworld.HASHES)),
        "eopack: bigearthnet.hashes: {source}/hashes.txt: object not found; "
        f"{BEN}/hashes.txt (from s3://{BIGEARTHNET_BUCKET}/{BIGEARTHNET_PREFIX}/hashes.txt) is "
        "kept",
        PRE,
        id="metadata-hashes-missing",
    ),
    case(
        lambda s: s.release_copy(lambda f: f.update({benworld.HASHES: b"not an md5 line\n"})),
        "eopack: bigearthnet.hashes ({source}/hashes.txt): line 1: 'not an md5 line' is not "
        "'<md5>  <file name>'",
        PRE,
        id="metadata-hashes-malformed",
    ),
    case(
        lambda s: wrong_md5(s, benworld.METADATA, "1" * 32),
        f"eopack: metadata.parquet: md5 mismatch: expected {'1' * 32}, got {{got}} (from "
        f"s3://{BIGEARTHNET_BUCKET}/{BIGEARTHNET_PREFIX}/metadata.parquet); the download was "
        "discarded, run again to fetch it anew; kept in the cache: "
        f"{BEN}/cache/md5/{{got}}/metadata.parquet (… KB, md5 {{got}})",
        PRE,
        id="metadata-md5-mismatch",
    ),
    # ---- Destinations ----------------------------------------------------------------------
    case(
        lambda s: s.config.update(destination={"uri": "s3:/my-bucket/eo"}),
        "eopack: config: destination.uri: 's3:/my-bucket/eo': s3: needs two slashes "
        "(s3://bucket/prefix), "
        "or name a local folder without a colon",
        PRE,
        id="destination-one-slash",
    ),
    case(
        lambda s: s.config.update(destination={"uri": f"s3://{DEMO_BUCKET}/mine"}),
        f"eopack: config: destination.uri: s3://{DEMO_BUCKET}/mine/: {DEMO_BUCKET} is a configured "
        "source bucket (eopack never writes to a source)",
        PRE,
        id="destination-source-bucket",
    ),
    case(
        lambda s: s.config.update(destination={"uri": "s3://my-bucket/a/../b"}),
        "eopack: config: destination.uri: 's3://my-bucket/a/../b': prefix 'a/../b' has an empty, "
        "'.' or "
        "'..' segment",
        PRE,
        id="destination-dotdot-prefix",
    ),
    case(
        lambda s: s.config.update(destination={"uri": "s3://My_Bucket/eo"}),
        "eopack: config: destination.uri: 's3://My_Bucket/eo': 'My_Bucket' is not a valid S3 "
        "bucket name",
        PRE,
        id="destination-bad-bucket-name",
    ),
    case(
        lambda s: (
            s.config.update(destination={"uri": "s3://no-such-bucket-eopack/eo"}),
            s.targets.append(f"results/deliver/{PRODUCT}.zip.json"),
        ),
        f"eopack: s3://no-such-bucket-eopack/eo/{PRODUCT}.zip: destination bucket does not exist",
        in_job("upload_zip"),
        id="destination-bucket-missing",
    ),
    case(
        lambda s: (
            s.config.update(destination={"uri": f"s3://{s.new_bucket(read_only=True)}/eo"}),
            s.targets.append(f"results/deliver/{PRODUCT}.zip.json"),
        ),
        f"eopack: s3://{{bucket}}/eo/{PRODUCT}.zip: access denied on the destination (not "
        "writable with these credentials)",
        in_job("upload_zip"),
        id="destination-read-only",
    ),
    # ---- Publish ---------------------------------------------------------------------------
    case(
        lambda s: s.config["publish"].update(expires_s=30),
        "eopack: config: publish.expires_s: 30 s is below the minimum of 60 s",
        PRE,
        id="publish-expires-too-short",
    ),
    case(
        lambda s: s.config["publish"].update(expires_s=86400),
        "eopack: config: publish.expires_s: 86400 s is above publish.max_expires_s, 43200 s "
        "(12 h); raise publish.max_expires_s, up to 604800 s (7 days), for longer-lived URLs",
        PRE,
        id="publish-expires-above-cap",
    ),
    case(
        lambda s: s.config["publish"].update(max_expires_s=1209600),
        "eopack: config: publish.max_expires_s: 1209600 s is above the SigV4 maximum of "
        "604800 s (7 days)",
        PRE,
        id="publish-cap-above-sigv4",
    ),
    case(
        lambda s: s.config["publish"].update(uri="s3:/eopack-demo-publish/eopack"),
        "eopack: config: publish.uri: 's3:/eopack-demo-publish/eopack' is not s3://bucket/prefix "
        "(presigned URLs need an S3 bucket)",
        PRE,
        id="publish-one-slash",
    ),
    case(
        lambda s: s.config["publish"].update(uri="https://example.org/share"),
        "eopack: config: publish.uri: 'https://example.org/share' is not s3://bucket/prefix "
        "(presigned URLs need an S3 bucket)",
        PRE,
        id="publish-not-s3",
    ),
    case(
        lambda s: s.config["publish"].update(uri=f"s3://{DEMO_BUCKET}/share"),
        f"eopack: config: publish.uri: s3://{DEMO_BUCKET}/share/: {DEMO_BUCKET} is a configured "
        "source bucket (eopack never writes to a source)",
        PRE,
        id="publish-source-bucket",
    ),
    case(
        lambda s: s.config["publish"].update(uri="s3://no-such-publish-bucket/shared"),
        "eopack: config: publish.uri: s3://no-such-publish-bucket/shared: publish bucket does not "
        "exist; stopped before any job ran, every result and receipt of earlier runs is kept",
        START,
        id="publish-bucket-missing",
    ),
    case(
        lambda s: (
            s.config["publish"].update(uri=f"s3://{s.new_bucket(read_only=True)}/shared"),
            s.targets.append("results/publish/bigearthnet/index.csv.json"),
        ),
        "eopack: s3://{bucket}/shared/bigearthnet/index.csv: access denied on the destination "
        "(not writable with these credentials)",
        in_job("publish_upload"),
        id="publish-read-only",
    ),
]


#: Categories of the catalogue, by the first word of a case's id.
CATEGORY = {
    "config": "config",
    "backend": "config",
    "collection": "config",
    "aoi": "AOI files",
    "date": "dates",
    "stac": "search answers",
    "dhus": "search answers",
    "bucket": "bucket contents",
    "archive": "archives",
    "metadata": "metadata",
    "destination": "destinations",
    "publish": "publish",
}


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A workflow folder where the demo ran to the end, and the hashes of its good files."""

    workdir: Path
    hashes: dict[str, str]


def good_files(workdir: Path) -> dict[str, str]:
    """SHA-256 of every result (but urls.tsv: result_hashes) and every file under resources/."""
    out = result_hashes(workdir)
    for path in sorted((workdir / "resources").rglob("*")):
        if path.is_file():
            out[path.relative_to(workdir).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return out


def lost(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Good files whose bytes are gone. A result must stay at its path, unchanged. Under
    resources/ a path may be gone, or name another verified download (a changed source), when
    its bytes are still there: BigEarthNet's job outputs are links into the download cache,
    which Snakemake removes before it runs the job again (README, "The download cache"); the
    cache keeps the verified bytes, and setting the config back links them again."""
    kept = set(after.values())
    return sorted(
        name
        for name, digest in before.items()
        if after.get(name) != digest and not (name.startswith("resources/") and digest in kept)
    )


@pytest.fixture(scope="module")
def finished(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """The session's finished demo run, copied once (each case copies this copy)."""
    workdir = tmp_path_factory.mktemp("bad-input") / "finished"
    shutil.copytree(demo_run.workdir, workdir, symlinks=True)
    hashes = good_files(workdir)
    assert {k: v for k, v in hashes.items() if k in demo_run.hashes} == demo_run.hashes
    return Finished(workdir, hashes)


@pytest.fixture(scope="module")
def hub(world: DemoWorld) -> Iterator[DhusServer]:
    """A DHuS test hub holding the demo products, for the credential cases."""
    with DhusServer(dhus_entries_from_demo(world.products), HUB_USER, HUB_PASSWORD) as started:
        yield started


def write_config(setup: Setup, name: str = "bad.yaml") -> str:
    """Write the (mutated) config next to the workflow; its path for ``--configfile``."""
    (setup.workdir / name).write_text(yaml.safe_dump(setup.config), encoding="utf-8")
    return name


def eopack_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("eopack: ")]


def matches(line: str, pattern: str) -> bool:
    """``line`` is ``pattern``, where each ``…`` stands for any text."""
    parts = pattern.split("…")
    if len(parts) == 1:
        return line == pattern
    if not (line.startswith(parts[0]) and line.endswith(parts[-1])):
        return False
    at = len(parts[0])
    for part in parts[1:-1]:
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return at <= len(line) - len(parts[-1])


def run_case(setup: Setup) -> subprocess.CompletedProcess[str]:
    """The user's command: ``snakemake [targets] --cores 2 [--forcerun rules] --configfile
    config/demo.yaml bad.yaml``."""
    args = [*setup.targets, "--cores", "2"]
    if setup.forcerun:
        args += ["--forcerun", *setup.forcerun]
    args += ["--configfile", "config/demo.yaml", write_config(setup)]
    return run_snakemake(setup.workdir, *args, env={**setup.world.env(), **setup.env})


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mutate", "message", "stage"), CASES)
def test_bad_input_stops_with_one_line_and_keeps_every_good_file(
    world: DemoWorld,
    hub: DhusServer,
    finished: Finished,
    tmp_path: Path,
    mutate: Mutate,
    message: str,
    stage: str,
) -> None:
    workdir = tmp_path / "wf"
    shutil.copytree(finished.workdir, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config" / "demo.yaml").read_text(encoding="utf-8"))
    setup = Setup(workdir=workdir, config=config, world=world, hub_url=hub.url, tmp=tmp_path)
    try:
        mutate(setup)
        proc = run_case(setup)
    finally:
        for undo in reversed(setup.undo):
            undo()
    expected = message.format(hub=setup.hub_url, dead=setup.dead_url, src=SRC, **setup.names)
    console = proc.stderr

    assert proc.returncode != 0, console[-3000:]
    assert "Traceback" not in console, console[-3000:]
    lines = eopack_lines(console)
    assert len(lines) == 1, console[-3000:]
    assert matches(lines[0], expected), f"\n got: {lines[0]}\nwant: {expected}"
    assert eopack_lines(proc.stdout) == []
    assert console.count(lines[0].removeprefix("eopack: ")) == 1, console[-3000:]
    failed = [line for line in console.splitlines() if " FAILED " in line]
    if stage == PRE:  # stopped while Snakemake reads the workflow: no DAG, no job
        assert "Building DAG of jobs" not in console, console[-3000:]
        assert failed == []
    elif stage == START:  # stopped in onstart: a DAG, no job started
        assert "Building DAG of jobs" in console and failed == [], console[-3000:]
    else:  # one job failed; its log holds the same message as an ERROR record
        rule = stage.removeprefix("job ")
        assert len(failed) == 1 and f" FAILED {rule} " in failed[0], console[-3000:]
        log = failed[0].rsplit("; log: ", 1)[1]
        records = [
            ln.split(" ", 1)[1]
            for ln in (workdir / log).read_text(encoding="utf-8").splitlines()
            if " ERROR " in ln
        ]
        assert records == [f"ERROR {lines[0]}"], log
    changed = lost(finished.hashes, good_files(workdir))
    assert changed == [], f"{len(changed)} good files lost or changed: {changed[:8]}"
    seen = (
        console
        + proc.stdout
        + "".join(p.read_text(errors="replace") for p in sorted((workdir / "logs").rglob("*.log")))
    )
    assert HUB_PASSWORD not in seen and WRONG_PASSWORD not in seen


def test_table_is_large_enough() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)) >= 50
    categories = [CATEGORY[i.split("-")[0]] for i in ids]
    assert set(categories) == set(CATEGORY.values())
