#!/usr/bin/env python3
"""Build kz_regions.geojson (Kazakhstan first-level units, 2022+ structure) for Qorgau.

Source geometry: geokz R package (github.com/arodionoff/geokz), file
inst/shape/kaz_admbnda_adm1_2024.{shp,shx,dbf,prj,cpg} at commit
41c1a00454ec9e01bda031b5074920bd82de02ce ("geokz 1.0.2", 2024-07-01).
Licence of geokz: CC BY 4.0 (see SOURCE.md for the attribution text and for
the upstream OCHA/HDX COD-AB caveat).  This is NOT public-domain data.

What the script does (deterministic, no network):
  1. reads the 20 polygons (17 oblasts + Astana, Almaty, Shymkent), maps the
     KATO oblast code (first two digits) to the project id "KZ-<code>";
  2. checks the source is a clean partition (no overlaps/gaps) and that the
     three 2022 regions equal the dissolve of their 2024 districts
     (kaz_admbnda_adm2_2024) -- a consistency check of the source, printed;
  3. simplifies *shared arcs* (topology-preserving: each border between two
     regions is simplified once, so neighbours keep identical edges),
     tolerance TOL degrees (Douglas-Peucker), rounds to 3 decimals,
     re-polygonizes and assigns faces back to regions;
  4. writes a GeoJSON FeatureCollection with properties id, name_en
     (RFC 7946 winding: exteriors counter-clockwise; note d3-geo expects the
     opposite, Leaflet/OpenLayers/MapLibre do not care).
Optional: --preview writes preview.png (matplotlib) with ids.

Usage:  python build.py [--src DIR] [--out FILE] [--tol 0.01] [--preview]
Needs:  shapely>=2, pyshp, (matplotlib for --preview).
If --src lacks the shapefiles and the geokz mirror exists at
/work/.mirror/arodionoff+geokz/repo, they are extracted from the pinned commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import shapefile  # pyshp
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.ops import linemerge, polygonize, unary_union

HERE = os.path.dirname(os.path.abspath(__file__))
GEOKZ_MIRROR = "/work/.mirror/arodionoff+geokz/repo"
GEOKZ_COMMIT = "41c1a00454ec9e01bda031b5074920bd82de02ce"
LAYERS = ["kaz_admbnda_adm1_2024", "kaz_admbnda_adm2_2024", "kaz_admbnda_adm2_2018"]
REGIONS_TOML = str(Path(__file__).resolve().parents[1] / "core" / "data" / "regions.toml")

# Fallback copy of the project's ids/names (core/data/regions.toml), used only
# if that file is not readable.
FALLBACK_NAMES = {
    "KZ-10": "Abai Region",
    "KZ-11": "Akmola Region",
    "KZ-15": "Aktobe Region",
    "KZ-19": "Almaty Region",
    "KZ-23": "Atyrau Region",
    "KZ-27": "West Kazakhstan Region",
    "KZ-31": "Jambyl Region",
    "KZ-33": "Jetisu Region",
    "KZ-35": "Karaganda Region",
    "KZ-39": "Kostanay Region",
    "KZ-43": "Kyzylorda Region",
    "KZ-47": "Mangystau Region",
    "KZ-55": "Pavlodar Region",
    "KZ-59": "North Kazakhstan Region",
    "KZ-61": "Turkistan Region",
    "KZ-62": "Ulytau Region",
    "KZ-63": "East Kazakhstan Region",
    "KZ-71": "Astana",
    "KZ-75": "Almaty",
    "KZ-79": "Shymkent",
}

# Districts (KATO of the *pre-2022* layer kaz_admbnda_adm2_2018) that were moved
# whole into the new regions.  Abai is NOT a whole-district dissolve of the 2018
# layer: its Aqsuat and Maqanshy districts were created in 2022 from parts of the
# Tarbagatay and Urzhar districts, so for Abai only the 2024 district layer is used.
WHOLE_2018_DISTRICTS = {
    "KZ-33": [
        "191000000",
        "192600000",
        "193200000",
        "193400000",
        "196400000",  # Taldykorgan, Tekeli, Aksu, Alakol, Eskeldi
        "194600000",
        "194800000",
        "195000000",
        "195600000",
        "196000000",
    ],  # Kerbulak, Koksu, Karatal, Panfilov, Sarkand
    "KZ-62": [
        "351800000",
        "352000000",
        "352300000",
        "354400000",
        "356000000",
    ],  # Zhezkazgan, Karazhal, Satpaev, Zhanaarka, Ulytau
}


def project_names() -> dict[str, str]:
    try:
        import tomllib

        with open(REGIONS_TOML, "rb") as fh:
            data = tomllib.load(fh)
        return {r["id"]: r["name_en"] for r in data["regions"]}
    except (OSError, KeyError, ImportError):
        return dict(FALLBACK_NAMES)


def ensure_sources(src: str) -> None:
    os.makedirs(src, exist_ok=True)
    for layer in LAYERS:
        for ext in ("shp", "shx", "dbf", "prj", "cpg"):
            dst = os.path.join(src, f"{layer}.{ext}")
            if os.path.exists(dst):
                continue
            if not os.path.isdir(GEOKZ_MIRROR):
                sys.exit(f"missing {dst} and no geokz mirror at {GEOKZ_MIRROR}")
            blob = subprocess.run(
                ["git", "-C", GEOKZ_MIRROR, "show", f"{GEOKZ_COMMIT}:inst/shape/{layer}.{ext}"],
                check=True,
                capture_output=True,
            ).stdout
            with open(dst, "wb") as fh:
                fh.write(blob)


def read_layer(src: str, layer: str):
    r = shapefile.Reader(os.path.join(src, layer), encoding="utf-8")
    out = []
    for shp, rec in zip(r.shapes(), r.records(), strict=True):
        g = shape(shp.__geo_interface__)
        if not g.is_valid:
            g = shapely.make_valid(g)
        out.append((rec.as_dict(), g))
    return out


def iou(a, b) -> float:
    return a.intersection(b).area / a.union(b).area


def as_multipolygon(g):
    polys = [p for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon) and not p.is_empty]
    return MultiPolygon(polys) if len(polys) > 1 else polys[0]


def round_coords(g, nd=3):
    return shapely.set_precision(g, 10**-nd, mode="pointwise")


def simplify_partition(regions: dict[str, object], tol: float, nd: int = 3) -> dict[str, object]:
    """Topology-preserving simplification of a planar partition.

    Each shared border (arc between junctions) is simplified exactly once, so
    neighbouring regions keep coincident edges and no slivers/gaps appear.
    """
    boundaries = unary_union([g.boundary for g in regions.values()])  # noded linework
    arcs = linemerge(boundaries)
    arcs = list(getattr(arcs, "geoms", [arcs]))
    simplified = []
    for arc in arcs:
        s = arc.simplify(tol, preserve_topology=True)  # endpoints (junctions) are kept
        if s.is_empty or s.length == 0:
            continue
        simplified.append(round_coords(s, nd))
    noded = unary_union(simplified)  # re-node in case simplification made crossings
    faces = list(polygonize(noded))
    # assign each face to the region that covers most of it (faces outside -> dropped)
    buckets = defaultdict(list)
    for f in faces:
        if f.area == 0:
            continue
        pt = f.representative_point()
        best, best_area = None, 0.0
        for rid, g in regions.items():
            if g.contains(pt):
                best = rid
                break
        if best is None:  # fall back to largest overlap
            for rid, g in regions.items():
                a = g.intersection(f).area
                if a > best_area:
                    best, best_area = rid, a
            if best_area < 0.5 * f.area:
                continue  # face is a gap/outside area created by simplification
        buckets[best].append(f)
    out = {}
    for rid in regions:
        u = unary_union(buckets[rid])
        u = round_coords(u, nd)
        if not u.is_valid:
            u = shapely.make_valid(u)
        # RFC 7946 winding: exterior rings counter-clockwise, holes clockwise
        out[rid] = shapely.orient_polygons(as_multipolygon(u), exterior_cw=False)
    return out


def checks(src: str, adm1: dict[str, object]) -> list[str]:
    lines = []
    geoms = list(adm1.values())
    total = sum(g.area for g in geoms)
    union = unary_union(geoms)
    holes = sum(len(p.interiors) for p in getattr(union, "geoms", [union]))
    lines.append(
        f"source partition: sum(area)-area(union) = {total - union.area:.2e} deg^2, holes in union = {holes}"
    )
    adm2 = read_layer(src, "kaz_admbnda_adm2_2024")
    by_reg = defaultdict(list)
    for rec, g in adm2:
        by_reg["KZ-" + rec["KATO"][:2]].append((rec["ADM2_EN"], g))
    for rid in ("KZ-10", "KZ-33", "KZ-62"):
        d = unary_union([g for _, g in by_reg[rid]])
        lines.append(
            f"{rid}: IoU(adm1_2024, dissolve of its {len(by_reg[rid])} districts in adm2_2024 "
            f"[{', '.join(n for n, _ in by_reg[rid])}]) = {iou(d, adm1[rid]):.4f}"
        )
    adm2_18 = {
        rec["KATO"]: (rec["ADM2_EN"], g) for rec, g in read_layer(src, "kaz_admbnda_adm2_2018")
    }
    for rid, katos in WHOLE_2018_DISTRICTS.items():
        d = unary_union([adm2_18[k][1] for k in katos])
        lines.append(
            f"{rid}: IoU(adm1_2024, dissolve of pre-2022 districts "
            f"[{', '.join(adm2_18[k][0] for k in katos)}]) = {iou(d, adm1[rid]):.4f}"
        )
    return lines


def write_preview(path: str, out: dict[str, object], names: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MPath

    fig, ax = plt.subplots(figsize=(16, 9), dpi=110)
    cmap = plt.get_cmap("tab20")
    for i, (rid, g) in enumerate(sorted(out.items())):
        for p in getattr(g, "geoms", [g]):
            verts, codes = [], []
            for ring in [p.exterior, *p.interiors]:
                c = list(ring.coords)
                verts += c
                codes += [MPath.MOVETO] + [MPath.LINETO] * (len(c) - 2) + [MPath.CLOSEPOLY]
            ax.add_patch(
                PathPatch(
                    MPath(verts, codes),
                    facecolor=cmap(i % 20),
                    alpha=0.55,
                    edgecolor="black",
                    linewidth=0.6,
                )
            )
        pt = g.representative_point() if rid not in ("KZ-71", "KZ-75", "KZ-79") else g.centroid
        if rid in ("KZ-71", "KZ-75", "KZ-79"):  # tiny city polygons: label with leader line
            off = {"KZ-71": (1.2, 0.8), "KZ-75": (1.5, -1.0), "KZ-79": (-1.5, -1.0)}[rid]
            ax.annotate(
                f"{rid}\n{names.get(rid, '')}",
                xy=(pt.x, pt.y),
                xytext=(pt.x + off[0], pt.y + off[1]),
                fontsize=8,
                ha="center",
                color="darkred",
                arrowprops=dict(arrowstyle="-", color="darkred", lw=0.7),
            )
        else:
            ax.text(
                pt.x, pt.y, f"{rid}\n{names.get(rid, '')}", fontsize=8, ha="center", va="center"
            )
    ax.set_xlim(46, 88)
    ax.set_ylim(40, 56)
    ax.set_aspect(1 / 0.70)  # rough equal-distance aspect at ~46 deg N
    ax.set_title(
        "kz_regions.geojson preview - source: geokz 1.0.2 kaz_admbnda_adm1_2024 (CC BY 4.0), simplified"
    )
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(HERE, "src"))
    ap.add_argument("--out", default=os.path.join(HERE, "kz_regions.geojson"))
    ap.add_argument("--tol", type=float, default=0.01, help="Douglas-Peucker tolerance, degrees")
    ap.add_argument("--preview", nargs="?", const=os.path.join(HERE, "preview.png"), default=None)
    args = ap.parse_args()

    ensure_sources(args.src)
    names = project_names()
    adm1 = {}
    for rec, g in read_layer(args.src, "kaz_admbnda_adm1_2024"):
        rid = "KZ-" + rec["KATO"][:2]
        if rid in adm1:
            sys.exit(f"duplicate region {rid}")
        adm1[rid] = g
    missing = sorted(set(names) - set(adm1))
    extra = sorted(set(adm1) - set(names))
    if missing or extra:
        sys.exit(f"id mismatch: missing={missing} extra={extra}")

    for line in checks(args.src, adm1):
        print(line)

    out = simplify_partition(adm1, args.tol)

    feats = []
    for rid in sorted(out, key=lambda r: int(r[3:])):
        g = out[rid]
        feats.append(
            {
                "type": "Feature",
                "properties": {"id": rid, "name_en": names[rid]},
                "geometry": mapping(g),
            }
        )
        ratio = g.area / adm1[rid].area
        print(
            f"{rid:6s} {names[rid]:26s} parts={len(getattr(g, 'geoms', [g])):2d} "
            f"vertices={shapely.get_num_coordinates(g):5d} area_ratio={ratio:.4f} IoU={iou(g, adm1[rid]):.4f} "
            f"valid={g.is_valid}"
        )
    fc = {
        "type": "FeatureCollection",
        "name": "kz_regions",
        "attribution": (
            "Boundaries: geokz (A. Rodionov), https://github.com/arodionoff/geokz, CC BY 4.0, "
            "based on OCHA HDX COD-AB Kazakhstan; simplified for Qorgau."
        ),
        "features": feats,
    }
    text = json.dumps(fc, ensure_ascii=False, separators=(",", ":"))
    # json.dumps of rounded floats can print e.g. 52.300000000000004 -> re-round defensively
    fc2 = json.loads(text, parse_float=lambda s: round(float(s), 3))
    text = json.dumps(fc2, ensure_ascii=False, separators=(",", ":"))
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    print(
        f"wrote {args.out}: {len(feats)} features, {os.path.getsize(args.out)} bytes, tol={args.tol}"
    )

    # post-write check: shared borders still form a clean partition
    geoms = [shape(f["geometry"]) for f in fc2["features"]]
    tot = sum(g.area for g in geoms)
    uni = unary_union(geoms)
    print(
        f"output partition: overlap = {tot - uni.area:.2e} deg^2, all valid = {all(g.is_valid for g in geoms)}"
    )

    if args.preview:
        write_preview(
            args.preview,
            {f["properties"]["id"]: shape(f["geometry"]) for f in fc2["features"]},
            names,
        )
        print(f"wrote {args.preview}")


if __name__ == "__main__":
    main()
