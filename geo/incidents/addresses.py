"""Chinese address text made comparable (地址规范化): NFKC, Chinese numerals before units, 栋/幢/座 →
号楼, 村民小组/队 → 组, the redundant province/city/district prefix dropped, and the words that
only describe a spot (附近, 门口 …).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ZH_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
_ZH_NUM = "零〇一二两三四五六七八九十百千"
_UNITS = "号楼|号院|号|组|队|栋|幢|座|单元|层|楼|室|网格|村民小组|村民组|小组|排|巷|弄"
_RE_ZH_NUMBER = re.compile(f"([{_ZH_NUM}]+)(?=(?:{_UNITS}))")
_RE_SPACE_PUNCT = re.compile(r"[\s,，。、;；:：'\"“”‘’()（）\[\]【】{}<>《》_/\\|·~!！?？*]+")
_RE_HASH = re.compile(r"(\d+)#")
_RE_BUILDING = re.compile(r"(\d+)(?:号)?(?:栋|幢|座|号楼)")
_RE_GROUP = re.compile(r"(\d+)(?:村民小组|村民组|小组|队|组)")
_RE_YARD = re.compile(r"(\d+)号院")
_RE_DASH = re.compile(r"(?<!\d)-|-(?!\d)")

# Number tokens left after the names are found, in the order they are tried.
TOKEN_PATTERNS = [
    ("building", re.compile(r"(\d+)号楼")),
    ("grid", re.compile(r"第(\d+)网格")),
    ("door", re.compile(r"(\d+)(?:-\d+)?号")),
    ("group", re.compile(r"(\d+)组")),
    ("detail", re.compile(r"\d+(?:单元|层|楼|室|户)")),
    ("building", re.compile(r"(\d+)-\d+(?:-\d+)?")),
]
# The parent kinds a number token attaches to.
TOKEN_PARENTS = {"door": ("road",), "building": ("compound", "poi"), "group": ("village",),
                  "grid": ("village",)}

# Words that describe a spot rather than name a place; never worth a fuzzy search.
_FILLER = ("附近", "门口", "对面", "旁边", "东侧", "西侧", "南侧", "北侧", "路口", "交叉口", "院内",
           "家中", "楼下", "门前", "东边", "西边", "南边", "北边", "东头", "西头", "南头", "北头",
           "一带", "周边")
RE_FILLER = re.compile("|".join(_FILLER))
RE_CJK = re.compile(r"[\u4e00-\u9fff]")

PROVINCES = ("北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏",
             "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西",
             "海南", "重庆", "四川", "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏",
             "新疆", "台湾", "香港", "澳门")
# A province name counts as a prefix only with its suffix or directly before a city (河南漯河市):
# bare, it may begin a place name (河南街道).
_RE_PROVINCE = re.compile("^(?:" + "|".join(PROVINCES) + ")(?:(?:省|市|自治区|壮族自治区|回族自治区|"
                          "维吾尔自治区|特别行政区)|(?=[\u4e00-\u9fff]{2,4}?市))")

# Characters commonly typed for one another (same pinyin via the input method), by group.
HOMOPHONES = (
    "南楠男难", "桥乔侨", "河和合何荷禾", "城成程诚承丞", "龙隆笼聋", "庄装妆桩", "王旺汪望网",
    "李理里礼鲤", "张章彰樟", "刘流留柳浏", "陈晨沉臣辰尘", "杨阳扬洋羊", "赵照兆召", "黄皇煌凰璜",
    "周州洲舟粥", "吴武五伍午舞", "徐许旭序", "孙森荪", "马玛码蚂", "朱珠竹猪株", "胡湖虎护壶葫",
    "郭国果锅", "高糕皋膏", "林琳临淋邻麟", "罗洛落螺骆", "郑正政证整", "梁良粮凉量", "谢泻卸",
    "宋送颂诵", "唐堂塘棠糖", "韩寒含汉函", "冯丰风峰锋枫蜂封", "邓灯登等", "曹草槽", "彭朋鹏蓬棚",
    "曾增憎", "肖萧晓小孝校", "田甜填", "董东冬懂栋", "袁元园源原圆远院苑愿援", "潘盘攀", "于余鱼宇雨玉裕渔",
    "蒋江将姜疆浆", "蔡菜才财材", "杜渡度堵", "叶业夜页", "苏酥", "魏卫伟位维为", "吕旅铝", "丁顶定钉",
    "任人仁忍", "沈深申身神", "姚遥摇瑶", "卢路鹿陆露芦炉", "崔翠脆", "钟中忠终众", "谭潭坛弹", "范饭凡帆繁",
    "金今津斤", "石时实十拾", "廖料聊", "贾家佳加嘉甲", "夏下厦", "付傅富府福复", "方芳坊房", "白百柏",
    "孟梦", "秦琴勤", "邱秋丘", "尹银印引", "薛雪学", "闫严颜岩盐阎言", "段断锻", "雷蕾磊", "侯后候厚",
    "史市师诗施", "陶桃逃", "郝好", "毛茂", "常长昌场厂", "岳月越", "关官观", "新心欣辛", "庙妙",
    "湾弯", "岗刚钢港", "集吉济", "店电殿", "镇震", "淞松嵩", "裴培陪", "泰太", "滨宾", "村存",
    "营赢", "山三", "道到", "花华化", "庆青清轻", "明名鸣", "兴星", "安岸", "平坪萍", "康糠", "福",
)


# -- normalisation -------------------------------------------------------------------------------
def zh_to_int(s: str) -> int | None:
    """Read a Chinese numeral (三, 十二, 二十一, 一百零三, 一零三) as an integer."""
    if not s:
        return None
    if all(c in _ZH_DIGIT for c in s):
        return int("".join(str(_ZH_DIGIT[c]) for c in s))
    section, digit = 0, None
    for c in s:
        if c in _ZH_DIGIT:
            digit = _ZH_DIGIT[c]
        elif c in "十百千":
            mult = {"十": 10, "百": 100, "千": 1000}[c]
            section += (1 if digit is None else digit) * mult
            digit = None
        else:
            return None
    return section + (digit or 0)


def _numerals(match: re.Match) -> str:
    value = zh_to_int(match.group(1))
    return match.group(1) if value is None else str(value)


@dataclass(frozen=True)
class Prefixes:
    """What an address may start with that adds nothing: the jurisdictions' own names."""

    districts: tuple[str, ...] = ()
    townships: tuple[str, ...] = ()

    def strip(self, s: str) -> str:
        for name in self.districts:
            # The district's own name says nothing inside it, wherever it was written.
            s = s.replace(name, "")
        s = _RE_PROVINCE.sub("", s, count=1)
        m = re.match(r"^[\u4e00-\u9fff]{2,4}?市", s)
        if m and any(s.startswith(t, m.end()) for t in self.townships):
            s = s[m.end():]
        for name in self.districts:
            short = re.sub("(区|县|市|旗)$", "", name)
            if len(short) >= 2 and s.startswith(short) and any(
                    s.startswith(t, len(short)) for t in self.townships):
                return s[len(short):]
        return s


def normalise(address: str, prefixes: Prefixes | None = None) -> str:
    """Normalise an address: NFKC, no spaces/punctuation, Arabic numbers, 号楼 and 组 forms, no prefix."""
    s = unicodedata.normalize("NFKC", address or "").lower()
    s = _RE_SPACE_PUNCT.sub("", s)
    s = s.replace("—", "-").replace("－", "-")
    s = _RE_DASH.sub("", s)
    s = _RE_ZH_NUMBER.sub(_numerals, s)
    s = _RE_HASH.sub(r"\1号", s)
    s = _RE_BUILDING.sub(r"\1号楼", s)
    s = _RE_GROUP.sub(r"\1组", s)
    s = _RE_YARD.sub(r"\1号", s)
    if prefixes:
        s = prefixes.strip(s) or s  # an address that is only the prefix keeps it
    return s
