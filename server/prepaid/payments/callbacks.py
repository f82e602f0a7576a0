"""Tornado endpoints for WeChat Pay and Alipay notifications, one path per merchant."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from tornado.routing import URLSpec
from tornado.web import RequestHandler

from config.model import Site
from server.clock import Clock
from server.prepaid.payments.alipay import verify_alipay_notification
from server.prepaid.payments.keys import AlipayKeys, MerchantKeys, WechatKeys
from server.prepaid.payments.rejection import CallbackRejected
from server.prepaid.payments.settlement import PaidNotice, SettlementWorkers
from server.prepaid.payments.wechat import verify_wechat_notification

log = logging.getLogger(__name__)

NO_CONTENT = 204
OK = 200
SERVER_ERROR = 500


class _NotifyHandler(RequestHandler):
    """What both providers' endpoints share: POST only, signature instead of XSRF."""

    workers: SettlementWorkers
    clock: Clock

    def check_xsrf_cookie(self) -> None:
        """The provider cannot hold our XSRF cookie; the signature authenticates instead."""

    def _rejected(self, merchant: str, problem: CallbackRejected) -> None:
        level = logging.ERROR if problem.status >= SERVER_ERROR else logging.WARNING
        log.log(
            level,
            "%s refused for merchant %s from %s: %s",
            self.request.path,
            merchant,
            self.request.remote_ip,
            problem,
        )


class WechatNotifyHandler(_NotifyHandler):
    """`POST` of a WeChat Pay API v3 payment notification for one merchant."""

    def initialize(self, keys: WechatKeys, workers: SettlementWorkers, clock: Clock) -> None:
        """Bind the merchant's keys and the settlement workers."""
        self.keys = keys
        self.workers = workers
        self.clock = clock

    async def post(self) -> None:
        """Verify, settle, and answer 204, or 4xx/5xx with {"code":"FAIL","message":...}."""
        try:
            payment = verify_wechat_notification(
                self.keys, self.request.headers, self.request.body, now=self.clock.time()
            )
            notice = PaidNotice(
                "wechat",
                self.keys.merchant,
                payment.out_trade_no,
                payment.transaction_id,
                payment.total_fen,
            )
            await self.workers.settle(notice)
        except CallbackRejected as problem:
            self._rejected(self.keys.merchant, problem)
            self._fail(problem.status, problem.message)
            return
        except Exception:
            log.exception("WeChat Pay notification for %s failed", self.keys.merchant)
            self._fail(SERVER_ERROR, "internal error; please retry")
            return
        self.set_status(NO_CONTENT)
        self.finish()

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False))


class AlipayNotifyHandler(_NotifyHandler):
    """`POST` of an Alipay asynchronous notification (RSA2) for one merchant."""

    def initialize(self, keys: AlipayKeys, workers: SettlementWorkers, clock: Clock) -> None:
        """Bind the merchant's keys and the settlement workers."""
        self.keys = keys
        self.workers = workers
        self.clock = clock

    async def post(self) -> None:
        """Verify, settle a paid status, and answer plain `success`, or 4xx/5xx `fail`."""
        try:
            payment = verify_alipay_notification(self.keys, self.request.body)
            if payment.paid:
                notice = PaidNotice(
                    "alipay",
                    self.keys.merchant,
                    payment.out_trade_no,
                    payment.trade_no,
                    payment.total_fen,
                )
                await self.workers.settle(notice)
            else:
                # An authentic WAIT_BUYER_PAY or TRADE_CLOSED: acknowledged, nothing paid.
                if payment.trade_status == "TRADE_CLOSED":
                    await self.workers.close_unpaid(
                        "alipay", self.keys.merchant, payment.out_trade_no
                    )
                log.info(
                    "Alipay %s for order %s of %s: not paid, nothing posted",
                    payment.trade_status,
                    payment.out_trade_no,
                    self.keys.merchant,
                )
        except CallbackRejected as problem:
            self._rejected(self.keys.merchant, problem)
            self._answer(problem.status, "fail")
            return
        except Exception:
            log.exception("Alipay notification for %s failed", self.keys.merchant)
            self._answer(SERVER_ERROR, "fail")
            return
        self._answer(OK, "success")

    def _answer(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


def callback_routes(
    site: Site,
    workers: SettlementWorkers,
    *,
    keys: MerchantKeys | None = None,
    clock: Clock | None = None,
) -> list[URLSpec]:
    """The notify endpoints of every merchant of `site`, at each merchant's notify path.

    The keys are loaded from the site once (PaymentKeyError names a bad file); `workers`
    (which hold the ledger factory and the database) belong to the caller, who closes them.
    """
    loaded = keys if keys is not None else MerchantKeys.from_site(site)
    when = clock if clock is not None else workers.clock
    routes: list[URLSpec] = []
    for merchant in loaded.wechat_merchants:
        wechat = loaded.wechat(merchant)
        options: dict[str, Any] = {"keys": wechat, "workers": workers, "clock": when}
        routes.append(URLSpec(re.escape(wechat.notify_path) + "$", WechatNotifyHandler, options))
    for merchant in loaded.alipay_merchants:
        alipay = loaded.alipay(merchant)
        options = {"keys": alipay, "workers": workers, "clock": when}
        routes.append(URLSpec(re.escape(alipay.notify_path) + "$", AlipayNotifyHandler, options))
    return routes
