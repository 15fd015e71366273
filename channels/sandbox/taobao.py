"""Taobao/Tmall TOP-style sandbox: GET or POST /sandbox/taobao/router/rest?method=...

Field names, statuses and envelopes follow the field notes (channel-payment-bank-formats.md
§2.1). Where the notes are silent, this is what real TOP does and what the sandbox serves:

Common parameters: `method` and `app_key` are required (the app key names the sandbox shop);
`session`, `sign`, `sign_method`, `timestamp`, `v`, `format` are accepted and ignored. Answers
are JSON only (no `format=xml`, no `simplify=true`).

Errors come back as HTTP 200 with TOP's error envelope, as real TOP does:
    {"error_response": {"code": 41, "msg": "Invalid Arguments", "sub_code":
     "isv.invalid-parameter:page_size", "sub_msg": "page_size must be 1..100", "request_id": "…"}}
    code 28 Missing App Key, 21 Missing Method, 22 Invalid Method, 40 Missing Required
    Arguments (sub_code isv.missing-parameter:<name>), 41 Invalid Arguments (isv.invalid-parameter:
    <name>), 15 Remote service error for business rules (window over a day, older than 3 months:
    isv.invalid-parameter; unknown tid: isv.trade-not-exist).
The one exception is the error_rate fault: HTTP 503 with
    {"error_response": {"code": 10, "msg": "Service Currently Unavailable", "sub_code":
     "isp.top-remote-service-unavailable", …}}.

taobao.trades.sold.increment.get
    start_modified, end_modified: "yyyy-MM-dd HH:mm:ss", Beijing time (UTC+8), required; the
        window is half-open [start, end) (TOP does not document the ends; half-open means
        adjacent windows see an order once); end − start ≤ 1 day; start within 90 days.
    page_no ≥ 1 (default 1), page_size 1..100 (default 40), status (one trade status),
    use_has_next, fields (optional here; see below), type/ext_type/tag/buyer_nick ignored.
    Sorted by `modified` descending (then tid descending). The list is computed as of the
    moment of each call, so an order changed between two page calls moves out of the window
    and the rows after it shift up: paging forward can miss it, paging from the last page back
    (as TOP advises) does not.
    {"trades_sold_increment_get_response": {"total_results": 57, "has_next": true,
      "trades": {"trade": [<trade>, …]}, "request_id": "…"}}
    `has_next` is always present; `total_results` is left out when use_has_next=true (TOP:
    "返回的结果中不包含总记录数"). When no trade matches, `trades` is left out entirely
    ({"total_results": 0, "has_next": false, …}), as TOP leaves out empty values.
taobao.trade.fullinfo.get
    tid (required), fields (optional), include_oaid.
    {"trade_fullinfo_get_response": {"trade": <trade>, "request_id": "…"}}
taobao.logistics.offline.send (push back a shipment; stateless: it checks the tid is paid and
    not closed, answers success, and does not change later answers)
    tid, out_sid, company_code required.
    {"logistics_offline_send_response": {"shipping": {"is_success": true}, "request_id": "…"}}

<trade> (the same full trade from both calls unless `fields` narrows it; `fields` is a comma
list of trade fields, "orders" for whole sub-orders or "orders.<field>" for some of them;
empty values are left out, as TOP does):
    {"tid": "1234001772345670", "status": "WAIT_SELLER_SEND_GOODS", "type": "fixed",
     "created": "2026-01-09 10:00:03", "modified": "2026-01-09 10:01:10",
     "pay_time": "2026-01-09 10:01:10", "payment": "336.00", "total_fee": "336.00",
     "post_fee": "0.00", "discount_fee": "0.00", "adjust_fee": "0.00",
     "buyer_open_uid": "AAH…", "seller_flag": 0, "buyer_message": "请尽快发货",
     "receiver_name": "王芳", "receiver_state": "浙江省", "receiver_city": "杭州市",
     "receiver_district": "西湖区", "receiver_town": "城关街道",
     "receiver_address": "文三路12号阳光花园3幢1单元1201室", "receiver_zip": "310000",
     "receiver_mobile": "138****1234", "oaid": "1Qk…",
     "promotion_details": {"promotion_detail": [{"id": 1, "promotion_name": "店铺优惠券",
         "discount_fee": "10.00"}]},                       (only when discounted)
     "orders": {"order": [{"oid": "1234001772345671", "num_iid": 612345678901,
         "sku_id": "4001234567890", "outer_iid": "SKU-TEA-001", "outer_sku_id": "SKU-TEA-001",
         "title": "…", "sku_properties_name": "净含量:250g", "num": 2, "price": "168.00",
         "total_fee": "336.00", "discount_fee": "0.00", "adjust_fee": "0.00",
         "payment": "336.00", "divide_order_fee": "336.00",
         "status": "WAIT_SELLER_SEND_GOODS", "refund_status": "NO_REFUND",
         "is_oversold": false}]}}
    Types follow the notes' example: ids and money are strings, num_iid/num/seller_flag are
    numbers. tid = 4-digit shop code + 11-digit slot + "0"; oid = the same with the line number.
    Trade status: WAIT_BUYER_PAY → WAIT_SELLER_SEND_GOODS (paid) | TRADE_CLOSED_BY_TAOBAO
    (cancelled or timed out unpaid; `end_time`) ; TRADE_CLOSED when every line is refunded.
    A refunded line: refund_status WAIT_SELLER_AGREE, then SUCCESS with line status
    TRADE_CLOSED and a `refund_id`; the trade keeps its `payment` (TOP does not lower it).
    refund_status is "NO_REFUND" on lines without a refund (TOP's value; not in the notes).
    Amounts: trade total_fee = Σ line total_fee (= price × num); discount_fee = Σ line
    discount_fee; payment = total_fee − discount_fee + post_fee; line payment = total_fee −
    discount_fee, plus post_fee when it is the trade's only line (TOP); divide_order_fee never
    includes post_fee. Phones are masked; `oaid` is the same for the same receiver in a shop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import faults as fault
from . import stream
from .config import enabled, resolve

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_WINDOW = 24 * 3600
TRADE_STATUSES = {"TRADE_NO_CREATE_PAY", "WAIT_BUYER_PAY", "SELLER_CONSIGNED_PART",
                  "WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED",
                  "TRADE_FINISHED", "TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO", "PAY_PENDING",
                  "WAIT_PRE_AUTH_CONFIRM", "PAID_FORBID_CONSIGN"}
IGNORED_IN_FINGERPRINT = {"timestamp", "sign", "sign_method", "session", "v", "format",
                          "sandbox_faults", "sandbox_seed"}


class TopError(Exception):
    def __init__(self, code: int, msg: str, sub_code: str = "", sub_msg: str = "", status: int = 200):
        super().__init__(f"{code} {msg} {sub_code} {sub_msg}")
        self.code, self.msg, self.sub_code, self.sub_msg, self.status = code, msg, sub_code, sub_msg, status


def missing(name: str) -> TopError:
    return TopError(40, "Missing Required Arguments", f"isv.missing-parameter:{name}",
                    f"{name} is required")


def invalid(name: str, why: str) -> TopError:
    return TopError(41, "Invalid Arguments", f"isv.invalid-parameter:{name}", why)


def business(sub_code: str, why: str) -> TopError:
    return TopError(15, "Remote service error", sub_code, why)


def fmt(t: int | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, BEIJING).strftime(TIME_FORMAT)


def parse_time(params: dict, name: str) -> int:
    value = params.get(name)
    if not value:
        raise missing(name)
    try:
        moment = datetime.strptime(value, TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise invalid(name, f"{name} must be yyyy-MM-dd HH:mm:ss, got {value!r}") from None
    return int(moment.astimezone(UTC).timestamp())


def parse_int(params: dict, name: str, default: int, lo: int, hi: int | None = None) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(name, f"{name} must be an integer, got {value!r}") from None
    if number < lo or (hi is not None and number > hi):
        raise invalid(name, f"{name} must be {lo}..{hi or ''}, got {number}")
    return number


def truthy(value) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def base62(number: int, width: int) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        out.append(alphabet[rest])
    return "".join(out)


# --- Ids ------------------------------------------------------------------------------------


def tid_for(shop: stream.Shop, index: int, line: int = 0) -> str:
    return f"{shop.code:04d}{index:011d}{line}"


def index_of(shop: stream.Shop, tid: str) -> int | None:
    if not tid.isdigit() or len(tid) < 16 or tid[-1] != "0" or int(tid[:4]) != shop.code:
        return None
    return int(tid[4:-1])


# --- Rendering ------------------------------------------------------------------------------


def trade_status(v: stream.OrderView) -> str:
    if v.closed:
        return "TRADE_CLOSED_BY_TAOBAO"
    if not v.paid:
        return "WAIT_BUYER_PAY"
    if v.fully_refunded:
        return "TRADE_CLOSED"
    return "WAIT_SELLER_SEND_GOODS"


def render_trade(v: stream.OrderView) -> dict:
    shop, c, a, plan = v.shop, v.content, v.address, v.plan
    status = trade_status(v)
    lone = len(c.lines) == 1
    orders = []
    for n, line in enumerate(c.lines):
        title, props, _price, _en, _variant, num_iid, sku_id = stream.catalog_entry(line.sku)
        refund = v.refund_state(n)
        line_status = "TRADE_CLOSED" if refund == "refunded" else status
        order = {
            "oid": tid_for(shop, v.index, line.number), "num_iid": num_iid, "sku_id": sku_id,
            "outer_iid": line.sku, "outer_sku_id": line.sku, "title": title,
            "sku_properties_name": props, "num": line.quantity, "price": str(line.price),
            "total_fee": str(line.total), "discount_fee": str(line.discount), "adjust_fee": "0.00",
            "payment": str(line.payment + (c.post_fee if lone else stream.ZERO)),
            "divide_order_fee": str(line.payment), "status": line_status,
            "refund_status": {None: "NO_REFUND", "requested": "WAIT_SELLER_AGREE",
                              "refunded": "SUCCESS"}[refund],
            "is_oversold": False,
        }
        if refund:
            order["refund_id"] = f"{shop.code}{v.index:011d}{line.number}9"
        orders.append(order)
    end_time = None
    if v.closed:
        end_time = plan.closed_at
    elif status == "TRADE_CLOSED":
        end_time = plan.refunded_at
    receiver = (c.receiver_name, c.receiver_phone, a.state, a.city, a.district, a.detail)
    trade = {
        "tid": tid_for(shop, v.index), "status": status, "type": "fixed",
        "created": fmt(v.created), "modified": fmt(v.modified),
        "pay_time": fmt(plan.paid_at) if v.paid else None, "end_time": fmt(end_time),
        "payment": str(c.payable), "total_fee": str(c.goods), "post_fee": str(c.post_fee),
        "discount_fee": str(c.discount), "adjust_fee": "0.00",
        "buyer_open_uid": "AAH" + base62(stream.digest(shop.seed, shop.key, c.buyer.number), 11)
                          + base62(stream.digest(shop.key, "uid", c.buyer.number), 10),
        "seller_flag": 0, "buyer_message": c.buyer_message or None,
        "receiver_name": c.receiver_name, "receiver_state": a.state, "receiver_city": a.city,
        "receiver_district": a.district, "receiver_town": a.town, "receiver_address": a.detail,
        "receiver_zip": a.zip, "receiver_mobile": stream.mask_phone(c.receiver_phone),
        "oaid": "1" + base62(stream.digest(shop.seed, shop.key, "oaid", *receiver), 11)
                + base62(stream.digest(shop.seed, "oaid2", *receiver), 11),
    }
    if c.discount:
        trade["promotion_details"] = {"promotion_detail": [{
            "id": int(tid_for(shop, v.index)), "promotion_name": "店铺优惠券",
            "promotion_id": f"shopbonus-{shop.code}-{c.discount}", "discount_fee": str(c.discount)}]}
    trade["orders"] = {"order": orders}
    return {k: val for k, val in trade.items() if val is not None}


def select_fields(trade: dict, fields: str, include_oaid: bool) -> dict:
    wanted = {f.strip() for f in (fields or "").split(",") if f.strip()}
    if not wanted:
        return trade
    if include_oaid:
        wanted.add("oaid")
    out = {k: v for k, v in trade.items() if k in wanted}
    sub = {f.split(".", 1)[1] for f in wanted if f.startswith("orders.")}
    if "orders" not in wanted and sub and "orders" in trade:
        out["orders"] = {"order": [{k: v for k, v in o.items() if k in sub}
                                   for o in trade["orders"]["order"]]}
    return out


# --- The router -----------------------------------------------------------------------------


def fingerprint(params: dict, drop=()) -> str:
    skip = IGNORED_IN_FINGERPRINT | set(drop)
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip)


def _respond(body: dict, status: int = 200, call: Call | None = None) -> JsonResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    if call is not None:
        fault.annotate(response, call.applied, call.faults)
    return response


def error_body(err: TopError, request_id: str) -> dict:
    body = {"code": err.code, "msg": err.msg}
    if err.sub_code:
        body["sub_code"] = err.sub_code
    if err.sub_msg:
        body["sub_msg"] = err.sub_msg
    body["request_id"] = request_id
    return {"error_response": body}


class Call:
    """One router call: the parameters, the shop, the faults and the clock."""

    def __init__(self, request, params: dict, app_key: str):
        self.params = params
        self.cfg = resolve(app_key, request)
        self.faults = self.cfg.faults
        self.shop = stream.shop_for("taobao", app_key, self.cfg.seed, self.cfg.orders_per_minute,
                                    self.cfg.skus)
        self.at = stream.now()
        self.fingerprint = fingerprint(params)
        self.request_id = fault.request_id(self.cfg.seed, f"{self.fingerprint}@{self.at}")
        self.applied: list[str] = []

    def finish(self, trade: dict) -> dict:
        self.applied += fault.mutate_order(trade, self.faults, "taobao")
        return trade

    def trade(self, index: int) -> dict | None:
        view = self.shop.view(index, self.at)
        if view is None:
            return None
        trade = select_fields(render_trade(view), self.params.get("fields", ""),
                              truthy(self.params.get("include_oaid")))
        return self.finish(trade)

    # taobao.trades.sold.increment.get
    def increment(self) -> dict:
        p = self.params
        start, end = parse_time(p, "start_modified"), parse_time(p, "end_modified")
        if end <= start:
            raise invalid("end_modified", "end_modified must be later than start_modified")
        if end - start > MAX_WINDOW:
            raise business("isv.invalid-parameter", "修改时间跨度不能大于一天 (end_modified − start_modified ≤ 1 day)")
        if start < self.at - stream.VISIBLE_DAYS * 86400:
            raise business("isv.invalid-parameter", "只能查询三个月内的交易 (start_modified within 3 months)")
        page_no = parse_int(p, "page_no", 1, 1)
        page_size = parse_int(p, "page_size", 40, 1, 100)
        status = p.get("status") or ""
        if status and status not in TRADE_STATUSES:
            raise invalid("status", f"unknown status {status!r}")
        views = [self.shop.view(plan.index, self.at) for plan in self.shop.changed_in(start, end, self.at)]
        if status:
            views = [v for v in views if trade_status(v) == status]
        views.sort(key=lambda v: (v.modified, v.index), reverse=True)
        query = fingerprint(p, drop={"page_no"})
        pages, pos, boundary = [], 0, 1
        while pos < len(views):
            stop = min(pos + page_size, len(views))
            pages.append((pos, stop))
            pos = stop
            if stop < len(views) and page_size > 1 and fault.duplicates_at(
                    self.faults, self.cfg.seed, query, boundary):
                pos = stop - 1
            boundary += 1
        body = {}
        if not truthy(p.get("use_has_next")):
            body["total_results"] = sum(b - a for a, b in pages)
        body["has_next"] = page_no < len(pages)
        if page_no <= len(pages):
            a, b = pages[page_no - 1]
            if page_no > 1 and a < pages[page_no - 2][1]:
                self.applied.append("duplicate_across_pages")
            trades = [self.finish(select_fields(render_trade(v), p.get("fields", ""),
                                                truthy(p.get("include_oaid"))))
                      for v in views[a:b]]
            body["trades"] = {"trade": trades}
        body["request_id"] = self.request_id
        return {"trades_sold_increment_get_response": body}

    # taobao.trade.fullinfo.get
    def fullinfo(self) -> dict:
        tid = self.params.get("tid")
        if not tid:
            raise missing("tid")
        index = index_of(self.shop, tid)
        trade = None if index is None else self.trade(index)
        if trade is None:
            raise business("isv.trade-not-exist", f"交易不存在 (tid {tid})")
        return {"trade_fullinfo_get_response": {"trade": trade, "request_id": self.request_id}}

    # taobao.logistics.offline.send
    def offline_send(self) -> dict:
        for name in ("tid", "out_sid", "company_code"):
            if not self.params.get(name):
                raise missing(name)
        tid = self.params["tid"]
        index = index_of(self.shop, tid)
        view = None if index is None else self.shop.view(index, self.at)
        if view is None:
            raise business("isv.trade-not-exist", f"交易不存在 (tid {tid})")
        if trade_status(view) != "WAIT_SELLER_SEND_GOODS":
            raise business("isv.logistics-offline-service-error:B04",
                           f"当前交易状态不能发货 ({trade_status(view)})")
        return {"logistics_offline_send_response": {"shipping": {"is_success": True},
                                                    "request_id": self.request_id}}


METHODS = {
    "taobao.trades.sold.increment.get": Call.increment,
    "taobao.trade.fullinfo.get": Call.fullinfo,
    "taobao.logistics.offline.send": Call.offline_send,
}


@csrf_exempt
def router(request):
    if not enabled():
        raise Http404("sandbox disabled")
    params = {**request.GET.dict(), **request.POST.dict()}
    anonymous_id = fault.request_id("anonymous", fingerprint(params))
    app_key = params.get("app_key", "")
    if not app_key:
        return _respond(error_body(TopError(28, "Missing App Key", "isv.missing-parameter:app_key",
                                            "app_key (the sandbox shop key) is required"), anonymous_id))
    method = params.get("method", "")
    if not method:
        return _respond(error_body(TopError(21, "Missing Method"), anonymous_id))
    if method not in METHODS:
        return _respond(error_body(TopError(22, "Invalid Method", "isv.invalid-method",
                                            f"unknown method {method!r}"), anonymous_id))
    call = Call(request, params, app_key)
    fault.slow(call.faults)
    if call.faults.slow_pages:
        call.applied.append("slow_pages")
    if fault.fails(call.faults, call.cfg.seed, call.fingerprint, call.at):
        err = TopError(10, "Service Currently Unavailable", "isp.top-remote-service-unavailable",
                       "sandbox fault: error_rate", status=503)
        call.applied.append("error_rate")
        return _respond(error_body(err, call.request_id), status=503, call=call)
    try:
        body = METHODS[method](call)
    except TopError as err:
        return _respond(error_body(err, call.request_id), status=err.status, call=call)
    return _respond(body, call=call)
