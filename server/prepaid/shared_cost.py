"""Exact shared-cost (公摊) allocation: integer fen split by weights, summing to the total."""

from __future__ import annotations

from collections.abc import Mapping

from server.prepaid.records import LedgerError


def allocate_shared_cost(area: str, total_fen: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `total_fen` over meters in proportion to integer `weights` (largest remainder).

    Weights are floor area (e.g. in 0.01 m²) or consumption (e.g. in 0.01 kWh); each meter
    gets the floor of its exact share, and the fen left over go one each to the largest
    remainders (ties to the lower meter id). The result sums exactly to `total_fen`.
    """
    if isinstance(total_fen, bool) or not isinstance(total_fen, int):
        raise LedgerError(f"area {area}: shared cost must be integer fen, got {total_fen!r}")
    if total_fen < 0:
        raise LedgerError(f"area {area}: shared cost must not be negative, got {total_fen}")
    if not weights:
        raise LedgerError(f"area {area}: no meters to share the cost over")
    for meter, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise LedgerError(
                f"area {area}: weight of meter {meter} must be a non-negative integer,"
                f" got {weight!r}"
            )
    whole = sum(weights.values())
    if whole == 0:
        raise LedgerError(f"area {area}: the weights sum to zero")
    shares: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    for meter in sorted(weights):
        share, remainder = divmod(total_fen * weights[meter], whole)
        shares[meter] = share
        remainders.append((remainder, meter))
    left = total_fen - sum(shares.values())
    remainders.sort(key=lambda item: (-item[0], item[1]))
    for _, meter in remainders[:left]:
        shares[meter] += 1
    return shares
