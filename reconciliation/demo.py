"""Demo money: yesterday's mini-program payments, a WeChat-style statement with a few real-life
differences, and the reconciliation run over them. Idempotent."""

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone

from channels.models import Channel
from inventory.models import SKU
from orders import services
from orders.events import Actor
from orders.models import Order

from .importing import import_statement
from .matching import run_reconciliation
from .models import FundVoucher, ReconciliationRun, Statement
from .providers import PaymentNotice
from .vouchers import record_notice

ACCOUNT = "wx-mch-1900000001"


def load(stdout) -> None:
    if Statement.objects.filter(account=ACCOUNT).exists():
        return
    channel = Channel.objects.get(code="MINIAPP")
    day = timezone.localdate() - timedelta(days=1)
    start = datetime.combine(day, time(10, 0), timezone.get_current_timezone())
    orders = [_order(channel, i, start + timedelta(minutes=7 * i)) for i in range(6)]
    paid = [(o, f"42000020{day:%Y%m%d}{i:08d}", o.payable_amount) for i, o in enumerate(orders[:5])]
    paid[3] = (orders[3], paid[3][1], orders[3].payable_amount - Decimal("0.30"))  # short by 3 jiao
    for i, (order, tx, amount) in enumerate(paid):
        record_notice(_notice(order.order_no, tx, amount, order.placed_at + timedelta(minutes=1)))
        # Booked "yesterday": the notification came seconds after the payment, one 47 min late.
        FundVoucher.objects.filter(transaction_no=tx).update(callback_delay_seconds=2820 if i == 2 else 4)
    record_notice(_notice("MP-UNKNOWN-7731", f"42000020{day:%Y%m%d}99999999", Decimal("59.00"), start))
    rows = ["transaction_no,order_no,amount,occurred_at,fee,kind"]
    for order, tx, amount in paid[:4]:
        rows.append(f"{tx},{order.order_no},{amount},{order.placed_at + timedelta(minutes=1):%Y-%m-%d %H:%M:%S},0.00,payment")
    rows[2] = rows[2].replace(",0.00,payment", ",2.31,payment").replace(f",{paid[1][2]},", f",{paid[1][2] - Decimal('2.31')},")
    rows.append(f"42000020{day:%Y%m%d}77777777,MP-OFFLINE,120.00,{start + timedelta(hours=3):%Y-%m-%d %H:%M:%S},0.00,payment")
    import_statement(("\n".join(rows) + "\n").encode(), account=ACCOUNT, provider="wechatpay",
                     profile="generic_csv", filename=f"wechatpay-{day}.csv")
    run = run_reconciliation(day, day, ReconciliationRun.Trigger.MANUAL)
    stdout.write(f"  reconciliation: {len(paid) + 1} vouchers, statement of {len(rows) - 1} lines, "
                 f"run {run.pk}: {', '.join(f'{k} {n}' for k, n in run.counts.items() if n)}")


def _order(channel, i: int, placed) -> Order:
    sku = SKU.objects.get(code="SKU-TEA-002")
    data = {
        "external_order_id": f"MP-DEMO-{i:03d}", "status": "pending_payment", "placed_at": placed,
        "currency": "CNY", "buyer": {"name": "赵六", "phone": "13600000000"},
        "receiver": {"name": "赵六", "phone": "13600000000", "province": "上海", "city": "上海市",
                     "district": "徐汇区", "address": f"漕溪北路{100 + i}号"},
        "lines": [{"sku": sku, "quantity": 1 + i % 2, "unit_price": Decimal("128.00"), "discount": Decimal("0")}],
        "shipping_fee": Decimal("0"), "discount_total": Decimal("0"),
        "payable": Decimal("128.00") * (1 + i % 2),
    }
    order, _result = services.create_order(channel, data, Actor.for_channel(channel))
    return order


def _notice(order_no, tx, amount, at) -> PaymentNotice:
    return PaymentNotice(provider="wechatpay", transaction_no=tx, order_no=order_no, amount=amount,
                         currency="CNY", occurred_at=at, kind="payment", succeeded=True,
                         raw={"demo": True, "out_trade_no": order_no})
