"""Recharge orders and WeChat Pay / Alipay notification verification and settlement."""

from server.prepaid.payments.alipay import AlipayPayment, verify_alipay_notification
from server.prepaid.payments.callbacks import (
    AlipayNotifyHandler,
    WechatNotifyHandler,
    callback_routes,
)
from server.prepaid.payments.keys import AlipayKeys, MerchantKeys, PaymentKeyError, WechatKeys
from server.prepaid.payments.orders import Order, OrderError, PaymentOrders
from server.prepaid.payments.rejection import CallbackRejected
from server.prepaid.payments.settlement import (
    PaidNotice,
    Settlement,
    SettlementWorkers,
    settle,
)
from server.prepaid.payments.wechat import WechatPayment, verify_wechat_notification

__all__ = [
    "AlipayKeys",
    "AlipayNotifyHandler",
    "AlipayPayment",
    "CallbackRejected",
    "MerchantKeys",
    "Order",
    "OrderError",
    "PaidNotice",
    "PaymentKeyError",
    "PaymentOrders",
    "Settlement",
    "SettlementWorkers",
    "WechatKeys",
    "WechatNotifyHandler",
    "WechatPayment",
    "callback_routes",
    "settle",
    "verify_alipay_notification",
    "verify_wechat_notification",
]
