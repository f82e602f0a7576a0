"""What the ledger stores and returns: transaction types, records, filters and errors."""

from __future__ import annotations

from dataclasses import dataclass

# Types that credit the tenant's wallet from the merchant's cash.
RECHARGES = ("counter_recharge", "wechat_recharge", "alipay_recharge")
# Types that debit the wallet to a revenue account, and which account takes them.
DEDUCTIONS = {
    "energy_deduction": "energy_revenue",
    "shared_cost": "energy_revenue",
    "property_fee": "fee_revenue",
    "capacity_fee": "fee_revenue",
}
POSTABLE = (*RECHARGES, *DEDUCTIONS)
TYPES = (*POSTABLE, "reversal", "refund")
ACCOUNT_KINDS = ("wallet", "merchant_cash", "energy_revenue", "fee_revenue", "refunds_payable")

# Chinese names for receipts and the finance page.
TYPE_LABELS = {
    "counter_recharge": "柜台充值",
    "wechat_recharge": "微信充值",
    "alipay_recharge": "支付宝充值",
    "reversal": "冲正",
    "refund": "退电",
    "energy_deduction": "电费扣费",
    "shared_cost": "公摊扣费",
    "property_fee": "物业费扣费",
    "capacity_fee": "容量费扣费",
}


class LedgerError(ValueError):
    """A ledger request that cannot be carried out; the message says why."""


class NoWallet(LedgerError):
    """The meter has no open wallet."""


class WalletClosed(LedgerError):
    """The meter's wallet was closed by a refund and takes no more postings."""


class AlreadyReversed(LedgerError):
    """The transaction was already reversed once."""


@dataclass(frozen=True, slots=True)
class Account:
    """One ledger account: a tenant's wallet (with its meter) or a merchant account."""

    id: int
    kind: str
    meter: str | None
    tenant: str
    merchant: str
    opened_at: float
    closed_at: float | None


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of a posting: `duplicate` is True when the provider event was known."""

    transaction_id: int
    receipt_no: str
    balance_after_fen: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Transaction:
    """One ledger transaction as stored; `amount_fen` is its signed change to the wallet."""

    id: int
    receipt_no: str
    type: str
    account_id: int
    meter: str
    merchant: str
    amount_fen: int
    balance_after_fen: int
    operator: str
    channel: str
    reason: str
    provider: str | None
    provider_event_id: str | None
    reverses: int | None
    reversed_by: int | None
    invoiced: bool
    invoiced_at: float | None
    invoiced_by: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    """Which transactions to list; every field left None matches everything."""

    meter: str | None = None
    merchant: str | None = None
    types: tuple[str, ...] | None = None
    operator: str | None = None
    invoiced: bool | None = None
    since: float | None = None  # Unix seconds, inclusive
    until: float | None = None  # Unix seconds, exclusive


@dataclass(frozen=True, slots=True)
class Page:
    """Keyset paging, newest first: up to `limit` rows with ids below `before_id`."""

    limit: int = 50
    before_id: int | None = None
