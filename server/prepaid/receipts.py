"""Receipt numbers (gap-free per merchant and year) and the printable HTML receipt."""

from __future__ import annotations

import datetime as dt
from html import escape

import psycopg2.extensions

from server.prepaid.records import TYPE_LABELS, Transaction

Cursor = psycopg2.extensions.cursor

# China Standard Time has no daylight saving: receipts and their years use it.
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
SEQUENCE_DIGITS = 6


def china_time(at: float) -> dt.datetime:
    """Unix seconds as a China Standard Time datetime."""
    return dt.datetime.fromtimestamp(at, CHINA)


def next_receipt_no(cur: Cursor, merchant: str, at: float) -> str:
    """The merchant's next receipt number for the year of `at`, e.g. `M1-2024-000123`.

    The counter row stays locked until the caller's transaction ends, so numbers are
    taken in commit order and a rolled-back posting gives its number back.
    """
    year = china_time(at).year
    cur.execute(
        "INSERT INTO ledger_receipt_counters (merchant, year, last_no) VALUES (%s, %s, 1)"
        " ON CONFLICT (merchant, year)"
        " DO UPDATE SET last_no = ledger_receipt_counters.last_no + 1 RETURNING last_no",
        (merchant, year),
    )
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"receipt counter for {merchant} {year} returned no row")
    return f"{merchant}-{year}-{int(row[0]):0{SEQUENCE_DIGITS}d}"


def format_yuan(fen: int) -> str:
    """Fen as yuan with exactly two decimals and thousands separators: -123456 -> -1,234.56."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"an amount must be integer fen, got {fen!r}")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan:,}.{cents:02d}"


_STYLE = """
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; margin: 2em; }
.receipt { max-width: 32em; margin: auto; border: 1px solid #333; padding: 1.5em; }
h1 { font-size: 1.4em; text-align: center; margin: 0 0 0.2em; }
h2 { font-size: 1em; text-align: center; font-weight: normal; margin: 0 0 1em; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; width: 35%; font-weight: normal; color: #444; }
th, td { padding: 0.35em 0.2em; border-bottom: 1px dotted #999; }
td.amount { font-size: 1.3em; font-weight: bold; }
.sign { margin-top: 2em; display: flex; justify-content: space-between; }
@media print { body { margin: 0; } .receipt { border: none; } }
"""


def receipt_rows(tx: Transaction, merchant_name: str) -> list[tuple[str, str]]:
    """The labelled lines of a receipt, as plain text, in print order."""
    rows = [
        ("收据编号", tx.receipt_no),
        ("交易类型", TYPE_LABELS.get(tx.type, tx.type)),
        ("交易时间", china_time(tx.created_at).strftime("%Y-%m-%d %H:%M:%S")),
        ("收款单位", merchant_name),
        ("电表编号", tx.meter),
        ("金额（元）", format_yuan(tx.amount_fen)),
        ("交易后余额（元）", format_yuan(tx.balance_after_fen)),
        ("操作员", tx.operator),
    ]
    if tx.provider_event_id is not None:
        rows.append(("支付流水号", tx.provider_event_id))
    if tx.reason:
        rows.append(("原因", tx.reason))
    if tx.reverses is not None:
        rows.append(("冲正原交易", f"#{tx.reverses}"))
    rows.append(("开票状态", "已开票" if tx.invoiced else "未开票"))
    return rows


def render_receipt_html(tx: Transaction, merchant_name: str) -> str:
    """A self-contained printable HTML page for one transaction."""
    lines = []
    for label, value in receipt_rows(tx, merchant_name):
        css = ' class="amount"' if label == "金额（元）" else ""
        lines.append(f"<tr><th>{escape(label)}</th><td{css}>{escape(value)}</td></tr>")
    body = "\n".join(lines)
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        f"<title>收据 {escape(tx.receipt_no)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f'<body>\n<div class="receipt">\n<h1>{escape(merchant_name)}</h1>\n'
        f"<h2>电费收据</h2>\n<table>\n{body}\n</table>\n"
        '<div class="sign"><span>经办人签字：</span><span>客户签字：</span></div>\n'
        "</div>\n</body>\n</html>\n"
    )
