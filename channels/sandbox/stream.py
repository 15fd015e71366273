"""The deterministic order stream of one sandbox shop: a function of the seed and the clock.

Nothing is stored. Time is cut into slots of 60/N seconds (N = orders per minute); slot `i`
holds exactly one order, placed at a seeded second inside the slot, so order `i` can be rebuilt
from (seed, platform, shop key, i) alone and the orders placed in any time range are found by
arithmetic. Each order has a seeded plan of later events, all within HORIZON seconds of
placement:

    ~72 %  paid 5 s – 3 min after placement          ~8 %  paid late, 5 – 20 min
    ~10 %  cancelled by the buyer, 1 – 10 min         ~10 % closed unpaid (timeout), 15 – 20 min
    of the paid: ~10 % one line refunded (requested 3 – 20 min after payment, refunded 2 – 10
    min later), ~5 % receiver address changed 1 – 10 min after payment
    ~3 %   a re-order: the same buyer places the same lines again in the next slot; the first
           order is then never paid and times out (the OMS's pending-duplicate merge case)

An order is seen as of "now": its state applies every event up to now and its `modified` is
its latest event up to now, so a pull of a modified-time window sees an order once, in the
window of its latest change, and later windows see its updates. Orders placed after now do not
exist yet. `now()` is the one clock; tests replace it.

Buyers come from a pool drawn from the seed alone (not the shop or platform), so the same
person turns up on several shops and platforms, with phones masked per platform
(`138****1234` Taobao, `138-****-1234` Shopify). About 1 % of orders carry a placeholder
receiver address ("临时地址", "测试地址，请勿发货", "test"), for the OMS's validation to hold.

Money is Decimal, to the cent: line total = price × quantity; the coupon is spread over the
lines in proportion to their totals (the last line takes the rounding); payable = goods −
discount + shipping.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property, lru_cache

HORIZON = 3600  # every event of an order happens within this many seconds of its placement
VISIBLE_DAYS = 90  # Taobao: increments of the last 3 months only
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def now() -> int:
    """The sandbox clock, in Unix seconds. Tests monkeypatch this."""
    return int(time.time())


def digest(*parts) -> int:
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def unit(*parts) -> float:
    """A seeded number in [0, 1)."""
    return digest(*parts) / 2**64


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- Master data ----------------------------------------------------------------------------

# code → (Taobao title, SKU properties, unit price, Shopify product title, variant title)
CATALOG = {
    "SKU-TEA-001": ("【明前特级】西湖龙井 2025新茶 绿茶 250g", "净含量:250g", "168.00",
                    "West Lake Longjing Tea", "250 g"),
    "SKU-TEA-002": ("武夷山正山小种 红茶 200g 罐装", "净含量:200g", "98.00",
                    "Lapsang Souchong Black Tea", "200 g"),
    "SKU-CUP-001": ("龙泉青瓷 手工茶杯 品茗杯 2只装", "颜色分类:梅子青", "59.00",
                    "Longquan Celadon Cups", "Set of 2"),
    "SKU-POT-001": ("宜兴紫砂壶 原矿朱泥 西施壶 300ml", "容量:300ml", "268.00",
                    "Yixing Clay Teapot", "300 ml"),
    "SKU-GIFT-01": ("中秋茶礼盒 龙井+茶杯 企业团购送礼", "套餐:标准礼盒", "328.00",
                    "Mid-Autumn Tea Gift Box", "Standard"),
}


@lru_cache(maxsize=1024)
def catalog_entry(code: str) -> tuple[str, str, Decimal, str, str, int, str]:
    """(title, properties, price, en title, variant title, num_iid, sku_id) of any SKU code;
    codes outside the demo catalogue get a seeded price and a generic title."""
    if code in CATALOG:
        title, props, price, en, variant = CATALOG[code]
    else:
        cents = 1990 + digest("price", code) % 38000
        price = str(money(Decimal(cents) / 100))
        title, props, en, variant = f"店铺商品 {code}", f"规格:{code}", f"Product {code}", code
    num_iid = 600000000000 + digest("num_iid", code) % 99999999999
    sku_id = str(4000000000000 + digest("sku_id", code) % 999999999999)
    return title, props, Decimal(price), en, variant, num_iid, sku_id


# (Taobao province, Shopify province, Shopify code, [(city, zip, [districts])])
PROVINCES = [
    ("北京", "Beijing", "BJ", [("北京市", "100000", ["朝阳区", "海淀区", "东城区", "丰台区"])]),
    ("上海", "Shanghai", "SH", [("上海市", "200000", ["浦东新区", "徐汇区", "静安区", "闵行区"])]),
    ("天津", "Tianjin", "TJ", [("天津市", "300000", ["和平区", "南开区", "河西区"])]),
    ("重庆", "Chongqing", "CQ", [("重庆市", "400000", ["渝中区", "江北区", "南岸区"])]),
    ("浙江省", "Zhejiang", "ZJ", [("杭州市", "310000", ["西湖区", "上城区", "滨江区"]),
                                ("宁波市", "315000", ["海曙区", "鄞州区"])]),
    ("江苏省", "Jiangsu", "JS", [("南京市", "210000", ["玄武区", "鼓楼区", "建邺区"]),
                               ("苏州市", "215000", ["姑苏区", "吴中区"])]),
    ("广东省", "Guangdong", "GD", [("广州市", "510000", ["天河区", "越秀区", "海珠区"]),
                                 ("深圳市", "518000", ["南山区", "福田区", "宝安区"])]),
    ("四川省", "Sichuan", "SC", [("成都市", "610000", ["武侯区", "锦江区", "高新区"])]),
    ("湖北省", "Hubei", "HB", [("武汉市", "430000", ["洪山区", "江汉区", "武昌区"])]),
    ("湖南省", "Hunan", "HN", [("长沙市", "410000", ["岳麓区", "天心区", "芙蓉区"])]),
    ("山东省", "Shandong", "SD", [("济南市", "250000", ["历下区", "市中区"]),
                                ("青岛市", "266000", ["市南区", "崂山区"])]),
    ("福建省", "Fujian", "FJ", [("福州市", "350000", ["鼓楼区", "台江区"]),
                              ("厦门市", "361000", ["思明区", "湖里区"])]),
    ("河南省", "Henan", "HA", [("郑州市", "450000", ["金水区", "二七区"])]),
    ("河北省", "Hebei", "HE", [("石家庄市", "050000", ["长安区", "桥西区"])]),
    ("陕西省", "Shaanxi", "SN", [("西安市", "710000", ["雁塔区", "碑林区"])]),
    ("安徽省", "Anhui", "AH", [("合肥市", "230000", ["蜀山区", "包河区"])]),
    ("江西省", "Jiangxi", "JX", [("南昌市", "330000", ["东湖区", "红谷滩区"])]),
    ("广西壮族自治区", "Guangxi", "GX", [("南宁市", "530000", ["青秀区", "兴宁区"])]),
    ("云南省", "Yunnan", "YN", [("昆明市", "650000", ["五华区", "盘龙区"])]),
    ("贵州省", "Guizhou", "GZ", [("贵阳市", "550000", ["云岩区", "南明区"])]),
    ("辽宁省", "Liaoning", "LN", [("沈阳市", "110000", ["和平区", "沈河区"]),
                                ("大连市", "116000", ["中山区", "沙河口区"])]),
    ("吉林省", "Jilin", "JL", [("长春市", "130000", ["朝阳区", "南关区"])]),
    ("黑龙江省", "Heilongjiang", "HL", [("哈尔滨市", "150000", ["南岗区", "道里区"])]),
    ("山西省", "Shanxi", "SX", [("太原市", "030000", ["小店区", "迎泽区"])]),
    ("内蒙古自治区", "Inner Mongolia", "NM", [("呼和浩特市", "010000", ["新城区", "赛罕区"])]),
    ("海南省", "Hainan", "HI", [("海口市", "570000", ["美兰区", "龙华区"])]),
    ("甘肃省", "Gansu", "GS", [("兰州市", "730000", ["城关区", "七里河区"])]),
    ("宁夏回族自治区", "Ningxia", "NX", [("银川市", "750000", ["兴庆区", "金凤区"])]),
    ("青海省", "Qinghai", "QH", [("西宁市", "810000", ["城西区", "城中区"])]),
    ("新疆维吾尔自治区", "Xinjiang", "XJ", [("乌鲁木齐市", "830000", ["天山区", "沙依巴克区"])]),
    ("西藏自治区", "Tibet", "XZ", [("拉萨市", "850000", ["城关区"])]),
]
# Provinces weighted like online retail: the east coast buys most.
PROVINCE_WEIGHTS = [6, 7, 3, 3, 9, 9, 10, 5, 4, 4, 5, 4, 4, 3, 3, 3, 2, 2, 2, 2, 3, 1, 1, 2, 1,
                    1, 1, 1, 1, 1, 1]
REMOTE = {"新疆维吾尔自治区", "西藏自治区", "青海省", "内蒙古自治区"}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
         "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "晓东", "子涵", "欣怡", "浩然",
         "梓萱", "宇轩", "一诺", "思远", "佳怡", "俊杰", "雨桐", "文博", "诗涵", "建国", "红梅",
         "志强", "丹"]
MOBILE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152",
                   "155", "157", "158", "159", "166", "173", "176", "177", "180", "181", "182",
                   "185", "186", "187", "188", "189", "191", "198", "199"]
TOWNS = ["城关街道", "新华街道", "南湖街道", "东风街道", "解放路街道", "人民路街道", "和平街道",
         "长江路街道", "文化街道", "朝阳街道"]
STREETS = ["人民路", "解放路", "中山路", "建设路", "和平路", "文三路", "学府路", "科技路",
           "长江路", "黄河路", "新华路", "青年路", "幸福路", "花园路", "滨江大道", "金融街"]
COMPOUNDS = ["阳光花园", "翠湖小区", "金色家园", "锦绣华庭", "书香苑", "世纪城", "海棠湾",
             "绿城桂花园", "万科城", "碧桂园", "创意园", "科技大厦"]
PLACEHOLDER_ADDRESSES = ["临时地址", "测试地址，请勿发货", "test"]
BUYER_MESSAGES = ["请尽快发货", "送礼用，不要放价格单", "周末在家，工作日放快递柜", "请用顺丰",
                  "包装结实一点，谢谢", "麻烦备注生产日期"]
COUPONS = [Decimal("5.00"), Decimal("10.00"), Decimal("20.00"), Decimal("30.00")]
BUYER_POOL = 500


@dataclass(frozen=True)
class Address:
    state: str  # Taobao receiver_state
    province_en: str
    province_code: str
    city: str
    district: str
    town: str
    detail: str
    zip: str


@dataclass(frozen=True)
class Person:
    number: int
    name: str
    phone: str  # 11 digits, never sent unmasked
    email: str
    home: Address

    @property
    def surname(self) -> str:
        return self.name[0]

    @property
    def given_name(self) -> str:
        return self.name[1:]


def _address(rng: random.Random) -> Address:
    state, en, code, cities = rng.choices(PROVINCES, weights=PROVINCE_WEIGHTS)[0]
    city, zip_code, districts = rng.choice(cities)
    detail = (f"{rng.choice(STREETS)}{rng.randint(1, 999)}号{rng.choice(COMPOUNDS)}"
              f"{rng.randint(1, 30)}幢{rng.randint(1, 3)}单元{rng.randint(1, 32)}{rng.randint(1, 4):02d}室")
    return Address(state, en, code, city, rng.choice(districts), rng.choice(TOWNS), detail, zip_code)


@lru_cache(maxsize=4096)
def person(seed: str, number: int) -> Person:
    rng = random.Random(digest(seed, "person", number))
    name = rng.choice(SURNAMES) + rng.choice(GIVEN)
    phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    return Person(number, name, phone, f"buyer{number:04d}@example.com", _address(rng))


def mask_phone(phone: str, style: str = "taobao") -> str:
    if style == "shopify":
        return f"{phone[:3]}-****-{phone[-4:]}"
    return f"{phone[:3]}****{phone[-4:]}"


# --- Plans: when each order changes -----------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    index: int
    created: int
    line_count: int
    paid_at: int | None = None
    closed_at: int | None = None
    close_kind: str | None = None  # "cancel" (buyer) | "timeout" (never paid)
    refund_line: int | None = None  # 0-based line that gets refunded
    refund_requested_at: int | None = None
    refunded_at: int | None = None
    address_changed_at: int | None = None
    reorder: bool = False  # same buyer and lines as the order of the slot before

    @cached_property
    def events(self) -> tuple[int, ...]:
        times = [self.created, self.paid_at, self.closed_at, self.refund_requested_at,
                 self.refunded_at, self.address_changed_at]
        return tuple(sorted(t for t in times if t is not None))

    def modified_at(self, at: int) -> int | None:
        """The time of the latest change up to `at`; None if not placed yet."""
        seen = [t for t in self.events if t <= at]
        return seen[-1] if seen else None


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    sku: str
    quantity: int
    price: Decimal
    discount: Decimal

    @property
    def total(self) -> Decimal:
        return money(self.price * self.quantity)

    @property
    def payment(self) -> Decimal:
        return self.total - self.discount


@dataclass(frozen=True)
class Content:
    buyer: Person
    receiver_name: str
    receiver_phone: str
    address: Address
    new_address: Address  # after a post-payment address change
    lines: tuple[Line, ...]
    post_fee: Decimal
    buyer_message: str

    @property
    def goods(self) -> Decimal:
        return sum((line.total for line in self.lines), ZERO)

    @property
    def discount(self) -> Decimal:
        return sum((line.discount for line in self.lines), ZERO)

    @property
    def payable(self) -> Decimal:
        return self.goods - self.discount + self.post_fee


@dataclass(frozen=True)
class Shop:
    platform: str  # "taobao" | "shopify"
    key: str
    seed: str = "oms-sandbox"
    orders_per_minute: int = 6
    skus: tuple[str, ...] = ("SKU-TEA-001", "SKU-TEA-002", "SKU-CUP-001", "SKU-POT-001",
                             "SKU-GIFT-01")
    _plans: dict = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def code(self) -> int:
        """Four digits naming the shop inside its order ids."""
        return 1000 + digest(self.seed, self.platform, self.key, "code") % 9000

    def _h(self, *parts) -> int:
        return digest(self.seed, self.platform, self.key, *parts)

    # Slots: order i is placed in [i*60//N, (i+1)*60//N) (Unix seconds).
    def slot_start(self, i: int) -> int:
        return i * 60 // self.orders_per_minute

    def first_index_at(self, t: int) -> int:
        """The first order placed at or after t (Unix seconds)."""
        i = max(0, t * self.orders_per_minute // 60 - 1)
        while self.plan(i).created < t:
            i += 1
        return i

    def indexes(self, t_lo: int, t_hi: int) -> range:
        """Orders placed in [t_lo, t_hi)."""
        return range(self.first_index_at(t_lo), self.first_index_at(t_hi))

    def _raw_reorder(self, i: int) -> bool:
        return i > 0 and unit(self.seed, self.platform, self.key, i, "reorder") < 0.03

    def is_reorder(self, i: int) -> bool:
        return self._raw_reorder(i) and not self._raw_reorder(i - 1)

    def basis(self, i: int) -> int:
        """The slot whose buyer and lines order i carries (i itself unless a re-order)."""
        return i - 1 if self.is_reorder(i) else i

    def plan(self, i: int) -> Plan:
        cached = self._plans.get(i)
        if cached is None:
            if len(self._plans) > 50_000:
                self._plans.clear()
            cached = self._plans[i] = self._make_plan(i)
        return cached

    def _make_plan(self, i: int) -> Plan:
        rng = random.Random(self._h(i, "plan"))
        start, end = self.slot_start(i), self.slot_start(i + 1)
        created = start + rng.randrange(max(1, end - start))
        lines = random.Random(self._h(self.basis(i), "lines")).choices([1, 2, 3], [60, 30, 10])[0]
        lines = min(lines, len(self.skus))
        reorder = self.is_reorder(i)
        r = rng.random()
        if self.is_reorder(i + 1):  # the buyer ordered again at once: this one is abandoned
            r = 0.95
        if r < 0.72:
            paid_at = created + rng.randint(5, 180)
        elif r < 0.80:
            paid_at = created + rng.randint(300, 1200)
        elif r < 0.90:
            return Plan(i, created, lines, closed_at=created + rng.randint(60, 600),
                        close_kind="cancel", reorder=reorder)
        else:
            return Plan(i, created, lines, closed_at=created + rng.randint(900, 1200),
                        close_kind="timeout", reorder=reorder)
        refund = {}
        if rng.random() < 0.10:
            requested = paid_at + rng.randint(180, 1200)
            refund = {"refund_line": rng.randrange(lines), "refund_requested_at": requested,
                      "refunded_at": requested + rng.randint(120, 600)}
        changed = paid_at + rng.randint(60, 600) if rng.random() < 0.05 else None
        return Plan(i, created, lines, paid_at=paid_at, address_changed_at=changed,
                    reorder=reorder, **refund)

    def content(self, i: int) -> Content:
        b = self.basis(i)
        rng = random.Random(self._h(b, "content"))
        buyer = person(self.seed, rng.randrange(BUYER_POOL))
        if rng.random() < 0.15:  # a gift: someone else receives it
            other = person(self.seed, rng.randrange(BUYER_POOL))
            receiver_name, receiver_phone, address = other.name, other.phone, other.home
        else:
            receiver_name, receiver_phone, address = buyer.name, buyer.phone, buyer.home
        if rng.random() < 0.01:
            address = _replace_detail(address, rng.choice(PLACEHOLDER_ADDRESSES))
        new_address = _replace_detail(address, _address(random.Random(self._h(b, "moved"))).detail)
        count = self.plan(b).line_count
        skus = rng.sample(self.skus, count)
        quantities = [rng.choices([1, 2, 3], [70, 20, 10])[0] for _ in skus]
        prices = [catalog_entry(code)[2] for code in skus]
        goods = sum((money(p * q) for p, q in zip(prices, quantities, strict=True)), ZERO)
        coupon = ZERO
        if rng.random() < 0.30:
            coupon = rng.choice([c for c in COUPONS if c * 2 < goods] or [ZERO])
        discounts, left = [], coupon
        for n, (p, q) in enumerate(zip(prices, quantities, strict=True)):
            share = left if n == count - 1 else money(coupon * money(p * q) / goods)
            discounts.append(share)
            left -= share
        lines = tuple(Line(n + 1, code, q, p, d)
                      for n, (code, q, p, d) in enumerate(zip(skus, quantities, prices, discounts, strict=True)))
        after_discount = goods - coupon
        if after_discount >= Decimal("99.00"):
            post_fee = ZERO
        else:
            post_fee = Decimal("20.00") if address.state in REMOTE else Decimal("8.00")
        message = rng.choice(BUYER_MESSAGES) if rng.random() < 0.2 else ""
        return Content(buyer, receiver_name, receiver_phone, address, new_address, lines,
                       post_fee, message)

    def view(self, i: int, at: int) -> OrderView | None:
        """Order i as it stands at time `at`; None if not placed yet."""
        plan = self.plan(i)
        if plan.created > at:
            return None
        return OrderView(self, plan, at)

    def changed_in(self, start: int, end: int, at: int) -> list[Plan]:
        """Plans of the orders whose latest change up to `at` falls in [start, end)."""
        found = []
        for i in self.indexes(max(0, start - HORIZON), min(end, at + 1)):
            plan = self.plan(i)
            modified = plan.modified_at(at)
            if modified is not None and start <= modified < end:
                found.append(plan)
        return found


@lru_cache(maxsize=16)
def shop_for(platform: str, key: str, seed: str, orders_per_minute: int, skus: tuple[str, ...]) -> Shop:
    """A shared Shop per configuration, so its plan cache serves every page of a pull."""
    return Shop(platform, key, seed, orders_per_minute, skus)


def _replace_detail(address: Address, detail: str) -> Address:
    return Address(address.state, address.province_en, address.province_code, address.city,
                   address.district, address.town, detail, address.zip)


class OrderView:
    """One order at one moment: what a platform would answer about it then. The content
    (buyer, lines, amounts) is built on first use: sorting and filtering need the plan only."""

    def __init__(self, shop: Shop, plan: Plan, at: int):
        self.shop, self.plan, self.at = shop, plan, at

    @cached_property
    def content(self) -> Content:
        return self.shop.content(self.plan.index)

    def happened(self, t: int | None) -> bool:
        return t is not None and t <= self.at

    @property
    def index(self) -> int:
        return self.plan.index

    @property
    def created(self) -> int:
        return self.plan.created

    @property
    def modified(self) -> int:
        return self.plan.modified_at(self.at)

    @property
    def paid(self) -> bool:
        return self.happened(self.plan.paid_at)

    @property
    def closed(self) -> bool:
        return self.happened(self.plan.closed_at)

    @property
    def address(self) -> Address:
        if self.happened(self.plan.address_changed_at):
            return self.content.new_address
        return self.content.address

    def refund_state(self, line_index: int) -> str | None:
        """None, "requested" or "refunded" for the 0-based line."""
        if self.plan.refund_line != line_index:
            return None
        if self.happened(self.plan.refunded_at):
            return "refunded"
        if self.happened(self.plan.refund_requested_at):
            return "requested"
        return None

    @property
    def any_refunded(self) -> bool:
        line = self.plan.refund_line
        return line is not None and self.refund_state(line) == "refunded"

    @property
    def fully_refunded(self) -> bool:
        """Every line refunded (only one line is ever refunded, so: a one-line order)."""
        return self.plan.line_count == 1 and self.refund_state(0) == "refunded"
