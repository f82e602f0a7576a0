"""Prepaid money: the double-entry ledger, receipts and shared-cost allocation."""
