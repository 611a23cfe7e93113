"""Write `geocoding_eval.csv`: 郾城区 demo addresses with realistic noise, each labelled with the
place (or area) it means and its village.

Run `.venv/bin/python tests/data/make_geocoding_eval.py` after the demo's gazetteer changes; the
output is deterministic. Noise, one or two kinds per address:

  missing levels   no 郾城区, no township, no village, only the 小区 without its gate's road
  extra prefix     河南省漯河市 in front
  full-width       ０１２３ digits
  wrong order      the township (or village) written last, or the 小区 before its road
  typo             one character of a name: same-sound substitute (IME), any other substitute,
                   dropped or swapped with its neighbour
  numerals         一百二十三号, 三号楼, 3栋 / 3幢 / 3座, 三队 / 三村民小组
  description      附近 / 门口 / 对面, spaces and punctuation, 单元 and 室

When the noise removes what made an address unique (a group number without its village, a
village name shared by two townships), the label is the finest area still identified.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data import yancheng  # noqa: E402
from geo.incidents.addresses import HOMOPHONES  # noqa: E402

OUT = Path(__file__).with_name("geocoding_eval.csv")
SIZE = 2000
MIX = {"door": 0.33, "building": 0.25, "compound": 0.1, "group": 0.27, "poi": 0.05}
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
OTHER_CHARS = "的了是不我一有大在人这上中个国到说们为子和你地出道也时年"
DESCRIPTIONS = ("附近", "门口", "对面", "旁边", "东侧")


def zh_number(n: int) -> str:
    """Write 1–999 in Chinese numerals."""
    digits = "零一二三四五六七八九"
    if n < 100:
        return yancheng.zh_number(n)
    hundreds, rest = divmod(n, 100)
    if rest == 0:
        return digits[hundreds] + "百"
    if rest < 10:
        return digits[hundreds] + "百零" + digits[rest]
    tens = yancheng.zh_number(rest)
    return digits[hundreds] + "百" + ("一" + tens if rest < 20 else tens)


def parts_of(place: dict, areas: dict, places: dict) -> dict:
    """The address as parts: district, township, village, road, door, compound, building, group."""
    code = place["area_code"]
    township = areas[code[:9]]["name"]
    village = areas[code[:12]]["name"] if len(code) >= 12 else None
    p = {"district": "郾城区", "township": township, "village": None, "road": None, "door": None,
         "compound": None, "building": None, "group": None, "poi": None}
    kind = place["kind"]
    if kind == "door":
        p["road"], p["door"] = place["attrs"]["road"], place["attrs"]["number"]
    elif kind in ("compound", "building"):
        compound = place if kind == "compound" else places[place["parent_key"]]
        p["compound"] = compound["name"]
        if compound["parent_key"]:
            gate = places[compound["parent_key"]]
            p["road"], p["door"] = gate["attrs"]["road"], gate["attrs"]["number"]
        else:
            p["village"] = village
        if kind == "building":
            p["building"] = place["attrs"]["number"]
    elif kind == "group":
        p["village"], p["group"] = village, place["attrs"]["group"]
    elif kind == "poi":
        p["poi"] = place["name"]
        if not place["address"].startswith("郾城区" + place["name"]):
            p["village"] = village
        else:
            p["township"] = None
    return p


ORDER = ("district", "township", "village", "road", "door", "compound", "building", "group", "poi")


def render(p: dict, noise: set[str], rng: np.random.Generator) -> str:
    pieces = []
    for key in ORDER:
        value = p.get(key)
        if value is None or value == "":
            continue
        if key == "door":
            n = int(value)
            value = f"{zh_number(n)}号" if "numerals" in noise and rng.random() < 0.5 else f"{n}号"
        elif key == "building":
            n = int(value)
            form = rng.choice(["号楼", "栋", "幢", "座"]) if "numerals" in noise else "号楼"
            value = (zh_number(n) if "numerals" in noise and form == "号楼" else str(n)) + form
        elif key == "group":
            if "numerals" in noise:
                value = value.replace("组", str(rng.choice(["队", "村民小组", "组"])))
        pieces.append((key, value))
    if "wrong_order" in noise:
        movable = [i for i, (k, _) in enumerate(pieces) if k in ("township", "village", "district")]
        if movable:
            i = int(rng.choice(movable))
            pieces.append(pieces.pop(i))
    text = "".join(v for _, v in pieces)
    if "description" in noise:
        if p.get("building") and rng.random() < 0.5:
            text += f"{int(rng.integers(1, 5))}单元{int(rng.integers(1, 19))}0{int(rng.integers(1, 5))}室"
        else:
            text += str(rng.choice(DESCRIPTIONS))
        if rng.random() < 0.5:
            cut = int(rng.integers(1, len(text)))
            text = text[:cut] + str(rng.choice([" ", "，", "、", "-"])) + text[cut:]
    if "prefix" in noise:
        text = "河南省漯河市" + text
    if "fullwidth" in noise:
        text = text.translate(FULLWIDTH)
    return text


def typo(p: dict, rng: np.random.Generator, sounds: dict[str, str]) -> str | None:
    """Put one typo into one named part; return which part."""
    keys = [k for k in ("village", "road", "compound", "poi", "township")
            if p.get(k) and len(p[k]) >= 3]
    if not keys:
        return None
    key = str(rng.choice(keys))
    name = p[key]
    core = len(name) - (2 if name.endswith(("社区", "街道")) else 1)  # keep the type suffix
    i = int(rng.integers(0, core))
    r = rng.random()
    if r < 0.45 and name[i] in sounds:
        name = name[:i] + str(rng.choice(list(sounds[name[i]]))) + name[i + 1:]
    elif r < 0.6:
        name = name[:i] + str(rng.choice(list(OTHER_CHARS))) + name[i + 1:]
    elif r < 0.8 and core >= 3:
        name = name[:i] + name[i + 1:]
    elif i + 1 < core:
        name = name[:i] + name[i + 1] + name[i] + name[i + 2:]
    else:
        name = name[:i] + name[i] + name[i:]  # a doubled character
    p[key] = name
    return key


def main() -> None:
    demo = yancheng.generate()
    areas = {a["code"]: a for a in demo.areas}
    places = {p["key"]: p for p in demo.places}
    village_names: dict[str, list[str]] = {}
    for a in demo.areas:
        if a["level"] == 3:
            village_names.setdefault(a["name"], []).append(a["code"])
    sounds = {}
    for group in HOMOPHONES:
        for c in group:
            others = "".join(x for x in group if x != c)
            if others:
                sounds[c] = others
    rng = np.random.default_rng(20261129)
    by_kind = {k: sorted((p for p in demo.places if p["kind"] == k), key=lambda p: p["key"])
               for k in MIX}
    kinds = list(MIX)
    share = np.array([MIX[k] for k in kinds])
    noises = ["drop_district", "drop_township", "drop_village", "drop_road", "prefix", "fullwidth",
              "wrong_order", "typo", "numerals", "description"]
    rows = []
    for n in range(SIZE):
        kind = kinds[int(rng.choice(len(kinds), p=share))]
        place = by_kind[kind][int(rng.integers(len(by_kind[kind])))]
        p = parts_of(place, areas, places)
        chosen = set() if rng.random() < 0.12 else set(
            rng.choice(noises, size=1 if rng.random() < 0.6 else 2, replace=False).tolist())
        expect, level = place["key"], kind
        if "drop_district" in chosen:
            p["district"] = None
        if "drop_township" in chosen and p["township"]:
            p["township"] = None
        if "drop_village" in chosen and p["village"]:
            p["village"] = None
        if "drop_road" in chosen and p["compound"] and p["road"]:
            p["road"] = p["door"] = None
        if kind == "group" and p["village"] is None:
            if p["township"] is None:
                continue  # "三组" alone names nothing
            expect, level = place["area_code"][:9], "township"
        elif kind == "group" and p["township"] is None and len(village_names[p["village"]]) > 1:
            continue  # two villages share the name and nothing says which: not a fair question
        typo_in = typo(p, rng, sounds) if "typo" in chosen else None
        address = render(p, chosen, rng)
        village_code = place["area_code"][:12]
        rows.append({"id": n + 1, "address": address, "noise": "+".join(sorted(chosen)) or "clean",
                     "typo_in": typo_in or "", "village_code": village_code if level != "township" else "",
                     "township_code": place["area_code"][:9], "expect": expect, "level": level})
    with OUT.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} labelled addresses to {OUT}")


if __name__ == "__main__":
    main()
