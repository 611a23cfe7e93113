"""Write names: short forms of official ones, Chinese numerals, the lists invented names come from."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

NAMES_FILE = Path(__file__).with_name("names.json")
ZH_DIGITS = "零一二三四五六七八九"


def short_name(official: str) -> str:
    """Shorten an official committee name: 金牛社区居民委员会 → 金牛社区, 商南村民委员会 → 商南村."""
    if official.endswith("社区居民委员会"):
        return official.removesuffix("居民委员会")
    if official.endswith("居民委员会"):
        return official.removesuffix("居民委员会") + "社区"
    if official.endswith("村村民委员会"):
        return official.removesuffix("村民委员会")
    if official.endswith("村民委员会"):
        return official.removesuffix("村民委员会") + "村"
    return official


def township_short(name: str) -> str:
    """Drop a township's 街道/镇/乡: 沙北街道 → 沙北, 商桥镇 → 商桥."""
    return name.removesuffix("街道").removesuffix("镇").removesuffix("乡")


def zh_number(n: int) -> str:
    """Write 1–99 in Chinese numerals (三, 十二, 二十一)."""
    tens, ones = divmod(n, 10)
    if tens == 0:
        return ZH_DIGITS[ones]
    head = "" if tens == 1 else ZH_DIGITS[tens]
    return head + "十" + (ZH_DIGITS[ones] if ones else "")


@lru_cache(maxsize=1)
def load_names() -> dict:
    """Read the word lists invented names are drawn from (surnames, given names, 小区, trades)."""
    return json.loads(NAMES_FILE.read_text(encoding="utf-8"))
